-- test: exec of a program writing without end: output capped, deadline held
-- expect: exit=1 within=4s
-- journal-max-mb: 20

runbook { name = "exec-endless-output", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function() exec{ "yes", string.rep("y", 1000) } end }
