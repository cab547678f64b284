-- test: step timeout = "" (was the 30-minute default)
-- expect: exit=2 within=4s

runbook { name = "timeout-empty", version = "1.0.0" }
step{ "t", timeout = "", run = function() end }
