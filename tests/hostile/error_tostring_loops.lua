-- test: an error object whose __tostring loops forever
-- expect: exit=1 within=4s

runbook { name = "error-tostring-loops", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __tostring = function() while true do end end }))
end }
