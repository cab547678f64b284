-- test: load() of a million nested parentheses
-- expect: exit=1 within=4s

runbook { name = "load-nested-parens", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f, err = load("return " .. string.rep("(", 1000000) .. "1" .. string.rep(")", 1000000))
  error(err or "loaded")
end }
