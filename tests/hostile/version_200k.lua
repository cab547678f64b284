-- test: a 200 KB version
-- expect: exit=1|2 within=4s

runbook { name = "version-200k", version = "1.0.0-" .. string.rep("a", 200000) }
step{ "reached", timeout = "2s", run = function() error("accepted the version") end }
