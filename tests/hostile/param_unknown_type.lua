-- test: a parameter of an unknown type and a parameter spec that is not a table
-- expect: exit=2 within=4s

runbook { name = "param-unknown-type", version = "1.0.0", params = { a = { type = "blob" }, b = 5 } }
step("reached", function() error("accepted") end)
