-- test: math = nil inside a step, then another step
-- expect: exit=1|2 within=4s

runbook { name = "math-nil-in-step", version = "1.0.0" }
step{ "clear", timeout = "2s", run = function() math = nil end }
step{ "next", timeout = "2s", run = function() error("the run reached its second step") end }
