-- test: a looping __gc finalizer collected while declaring
-- expect: exit=1|2 within=12s

runbook { name = "gc-loop-in-declaration", version = "1.0.0" }
for _ = 1, 10 do setmetatable({}, { __gc = function() while true do end end }) end
for i = 1, 2e6 do local t = { i } end
step("never reached if the finalizer loops", function() error("reached") end)
