-- test: exec with a NUL byte inside an argument
-- expect: exit=1|2 within=4s

runbook { name = "exec-nul-in-argument", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function() exec{ "echo", "a\0b" } end }
