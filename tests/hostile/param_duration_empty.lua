-- test: a duration parameter given as empty text
-- expect: exit=2 within=4s
-- args: -p d=

runbook { name = "param-duration-empty", version = "1.0.0", params = { d = { type = "duration" } } }
step("reached", function() error("accepted") end)
