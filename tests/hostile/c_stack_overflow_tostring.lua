-- test: a __tostring that calls tostring on itself
-- expect: exit=2 within=4s

runbook { name = "c-stack-overflow-tostring", version = "1.0.0" }
step{ "recurse", timeout = "2s", run = function()
  local t
  t = setmetatable({}, { __tostring = function(self) return tostring(self) end })
  log.info(tostring(t))
end }
