-- test: choices = "x" (dropped silently)
-- expect: exit=2 within=4s

runbook { name = "choices-string", version = "1.0.0",
          params = { level = { type = "string", default = "y", choices = "x" } } }
step("reached", function() error("accepted") end)
