-- test: a busy loop past the deadline, then a __close that loops while unwinding
-- expect: exit=1 within=4s

runbook { name = "close-loops-after-deadline", version = "1.0.0" }
step{ "close", timeout = "2s", run = function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
  while true do end
end }
