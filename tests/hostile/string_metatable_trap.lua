-- test: the string metatable's __index replaced by a loop, then a string method
-- expect: exit=1|2 within=4s

runbook { name = "string-metatable-trap", version = "1.0.0" }
step{ "trap", timeout = "2s", run = function()
  local mt = getmetatable("")
  pcall(function() mt.__index = function() while true do end end end)
  pcall(setmetatable, mt, { __index = function() error("trapped") end })
  local s = ("x"):upper()
  error("string methods still work after the attempt: " .. s)
end }
