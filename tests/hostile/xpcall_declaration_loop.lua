-- test: an xpcall handler loop while declaring (ran past the 10 s declaration limit)
-- expect: exit=1|2 within=12s

runbook { name = "xpcall-declaration-loop", version = "1.0.0" }
xpcall(function() error("x") end, function() while true do end end)
step("never", function() end)
