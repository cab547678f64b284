-- test: x=inf for a number parameter
-- expect: exit=2 within=4s
-- args: -p x=inf

runbook { name = "param-inf", version = "1.0.0", params = { x = { type = "number" } } }
step("reached", function() error("accepted inf") end)
