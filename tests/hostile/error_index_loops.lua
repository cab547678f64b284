-- test: an error table whose __index loops forever
-- expect: exit=1 within=4s

runbook { name = "error-index-loops", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __index = function() while true do end end }))
end }
