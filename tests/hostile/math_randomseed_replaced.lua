-- test: math.randomseed replaced by a function that errors
-- expect: exit=1|2 within=4s

runbook { name = "math-randomseed-replaced", version = "1.0.0" }
math.randomseed = function() error("randomseed refused") end
math.random = function() error("random refused") end
step{ "fails", timeout = "2s", run = function() error("the run reached its step") end }
