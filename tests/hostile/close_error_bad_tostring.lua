-- test: a __close handler that raises an error whose __tostring fails
-- expect: exit=1 within=4s

runbook { name = "close-error-bad-tostring", version = "1.0.0" }
step{ "close", timeout = "2s", run = function()
  local x <close> = setmetatable({}, { __close = function()
    error(setmetatable({}, { __tostring = function() error("again") end }))
  end })
  error("first")
end }
