-- test: step timeout = true (was the 30-minute default)
-- expect: exit=2 within=4s

runbook { name = "timeout-true", version = "1.0.0" }
step{ "t", timeout = true, run = function() end }
