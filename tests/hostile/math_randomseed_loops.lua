-- test: math.randomseed replaced by a function that loops forever
-- expect: exit=1|2 within=12s

runbook { name = "math-randomseed-loops", version = "1.0.0" }
math.randomseed = function() while true do end end
step{ "fails", timeout = "2s", run = function() error("the run reached its step") end }
