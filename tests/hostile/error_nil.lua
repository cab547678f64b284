-- test: error(nil)
-- expect: exit=1 within=4s
-- output: always step ran

runbook { name = "error-nil", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function() error(nil) end }
step{ "cleanup", always = true, run = function() log.info("always step ran") end }
