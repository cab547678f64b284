-- test: an effect called with timeout = true
-- expect: exit=2 within=4s

runbook { name = "effect-timeout-true", version = "1.0.0" }
step{ "t", timeout = "2s", run = function() exec{ "sleep", "5", timeout = true } end }
