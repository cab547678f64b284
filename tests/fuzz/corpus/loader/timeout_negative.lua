-- test: step timeout = "-5s"
-- expect: exit=2 within=4s

runbook { name = "timeout-negative", version = "1.0.0" }
step{ "t", timeout = "-5s", run = function() end }
