-- test: a step whose name is a table and one of 1 MB
-- expect: exit=2 within=4s

runbook { name = "step-name-hostile", version = "1.0.0" }
step(string.rep("s", 1 << 20), function() end)
step({}, function() end)
