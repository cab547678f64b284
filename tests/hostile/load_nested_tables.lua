-- test: load() of 100,000 nested table constructors
-- expect: exit=1 within=4s

runbook { name = "load-nested-tables", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f, err = load("return " .. string.rep("{", 100000) .. string.rep("}", 100000))
  error(err or "loaded")
end }
