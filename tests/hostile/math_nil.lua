-- test: math = nil before the steps (the engine seeds math.random)
-- expect: exit=1|2 within=4s

runbook { name = "math-nil", version = "1.0.0" }
math = nil
step{ "fails", timeout = "2s", run = function() error("the run reached its step") end }
step{ "cleanup", always = true, run = function() log.info("always step ran") end }
