-- test: sleep longer than the step timeout
-- expect: exit=1 within=3s

runbook { name = "sleep-past-deadline", version = "1.0.0" }
step{ "sleep", timeout = "1s", run = function() sleep("10s") end }
