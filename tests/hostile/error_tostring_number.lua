-- test: an error object whose __tostring returns a number and whose __name is a table
-- expect: exit=1 within=4s

runbook { name = "error-tostring-number", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __tostring = function() return 42 end, __name = {} }))
end }
