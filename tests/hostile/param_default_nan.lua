-- test: a number parameter whose declared default is 0/0
-- expect: exit=2 within=4s

runbook { name = "param-default-nan", version = "1.0.0", params = { x = { type = "number", default = 0/0 } } }
step("reached", function() error("accepted") end)
