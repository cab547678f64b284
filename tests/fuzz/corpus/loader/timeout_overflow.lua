-- test: step timeout = "99999999999999999999h" (overflow)
-- expect: exit=1|2 within=4s

runbook { name = "timeout-overflow", version = "1.0.0" }
step{ "t", timeout = "99999999999999999999h", run = function() error("accepted") end }
