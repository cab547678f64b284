-- test: retry_delay = "" and retries = -1
-- expect: exit=2 within=4s

runbook { name = "retry-delay-empty", version = "1.0.0" }
step{ "t", retries = -1, retry_delay = "", run = function() end }
