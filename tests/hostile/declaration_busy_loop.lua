-- test: a plain endless loop while declaring
-- expect: exit=2 within=12s

runbook { name = "declaration-busy-loop", version = "1.0.0" }
while true do end
