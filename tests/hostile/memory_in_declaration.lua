-- test: memory exhaustion while declaring
-- expect: exit=1|2 within=12s

runbook { name = "memory-in-declaration", version = "1.0.0" }
local t = {}
for i = 1, math.maxinteger do t[i] = string.rep("x", 1 << 20) .. i end
step("never", function() end)
