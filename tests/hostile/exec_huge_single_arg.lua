-- test: exec with one 1 MB argument
-- expect: exit=1 within=4s

runbook { name = "exec-huge-single-arg", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function() exec{ "true", string.rep("a", 1 << 20) } end }
