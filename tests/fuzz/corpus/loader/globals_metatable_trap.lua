-- test: the globals' metatable replaced by one whose __index and __newindex error
-- expect: exit=1|2 within=4s

runbook { name = "globals-metatable-trap", version = "1.0.0" }
local rawstep = step
setmetatable(_G, { __index = function(_, k) error("global " .. tostring(k) .. " trapped") end,
                   __newindex = function(_, k) error("set " .. tostring(k) .. " trapped") end })
rawstep{ "fails", timeout = "2s", run = function() return undefined_thing end }
