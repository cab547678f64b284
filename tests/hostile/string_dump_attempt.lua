-- test: string.dump and the string metatable's hidden functions
-- expect: exit=2 within=4s
-- output-not: ESCAPED

runbook { name = "string-dump-attempt", version = "1.0.0" }
step{ "escape", timeout = "2s", run = function()
  local mt = getmetatable("")
  local idx = mt and mt.__index
  if type(idx) == "table" and idx.dump then log.info("ESCAPED: string.dump") end
  string.dump(print)
end }
