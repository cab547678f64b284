-- test: a step whose body is a number
-- expect: exit=2 within=4s

runbook { name = "step-not-function", version = "1.0.0" }
step("x", 42)
