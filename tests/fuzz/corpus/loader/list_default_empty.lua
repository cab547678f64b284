-- test: a list parameter with default = {} arrives as an empty list (arrived as { "{}" })
-- expect: exit=0 within=4s

runbook { name = "list-default-empty", version = "1.0.0", params = { items = { type = "list", default = {} } } }
step("check", function(p)
  assert(type(p.items) == "table", "items is a " .. type(p.items))
  assert(#p.items == 0, "items has " .. #p.items .. " entries, the first " .. tostring(p.items[1]))
end)
