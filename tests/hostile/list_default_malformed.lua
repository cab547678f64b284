-- test: a list parameter whose default holds tables
-- expect: exit=2 within=4s

runbook { name = "list-default-malformed", version = "1.0.0",
          params = { items = { type = "list", default = { { a = 1 }, print } } } }
step("reached", function() error("accepted") end)
