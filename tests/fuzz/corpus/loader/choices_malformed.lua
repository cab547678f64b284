-- test: choices holding tables, functions and a default outside them
-- expect: exit=2 within=4s

runbook { name = "choices-malformed", version = "1.0.0",
          params = { level = { type = "string", default = "L9", choices = { {}, print, "L1" } } } }
step("reached", function() error("accepted") end)
