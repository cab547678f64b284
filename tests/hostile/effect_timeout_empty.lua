-- test: an effect called with timeout = ""
-- expect: exit=2 within=4s

runbook { name = "effect-timeout-empty", version = "1.0.0" }
step{ "t", timeout = "2s", run = function() exec{ "sleep", "5", timeout = "" } end }
