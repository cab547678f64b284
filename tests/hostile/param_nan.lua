-- test: x=nan for a number parameter (accepted, journaled as null)
-- expect: exit=2 within=4s
-- args: -p x=nan

runbook { name = "param-nan", version = "1.0.0", params = { x = { type = "number" } } }
step("reached", function() error("accepted nan") end)
