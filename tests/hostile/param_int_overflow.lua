-- test: an int parameter of 30 digits
-- expect: exit=2 within=4s
-- args: -p n=999999999999999999999999999999

runbook { name = "param-int-overflow", version = "1.0.0", params = { n = { type = "int" } } }
step("reached", function() error("accepted") end)
