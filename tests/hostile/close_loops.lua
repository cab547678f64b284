-- test: a __close handler that loops
-- expect: exit=1 within=4s

runbook { name = "close-loops", version = "1.0.0" }
step{ "close", timeout = "2s", run = function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
end }
