-- test: exec whose own timeout is longer than the step's: the step deadline bounds it
-- expect: exit=1 within=3s

runbook { name = "exec-past-deadline", version = "1.0.0" }
step{ "exec", timeout = "1s", run = function() exec{ "sleep", "5", timeout = "10s" } end }
