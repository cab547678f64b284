-- test: setmetatable on a string and rawset on the string metatable
-- expect: exit=1|2 within=4s

runbook { name = "string-metatable-replace", version = "1.0.0" }
step{ "replace", timeout = "2s", run = function()
  pcall(setmetatable, "", {})
  pcall(rawset, getmetatable(""), "__index", function() error("trapped") end)
  pcall(rawset, getmetatable(""), "__tostring", function() while true do end end)
  log.info(("still a string"):upper())
  error("done")
end }
