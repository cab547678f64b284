-- test: an error object whose __tostring returns 100 MB
-- expect: exit=1 within=6s
-- journal-max-mb: 20

runbook { name = "error-tostring-huge", version = "1.0.0" }
step{ "raise", timeout = "4s", run = function()
  error(setmetatable({}, { __tostring = function() return string.rep("E", 100 << 20) end }))
end }
