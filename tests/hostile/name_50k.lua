-- test: a 50 KB runbook name
-- expect: exit=1|2 within=4s

runbook { name = string.rep("n", 50000), version = "1.0.0" }
step{ "reached", timeout = "2s", run = function() error("accepted the name") end }
