-- test: print of a value whose __tostring loops
-- expect: exit=1 within=4s

runbook { name = "log-tostring-loops", version = "1.0.0" }
step{ "log", timeout = "2s", run = function()
  print(setmetatable({}, { __tostring = function() while true do end end }))
end }
