-- test: a version built to make a regex backtrack
-- expect: exit=1|2 within=4s

runbook { name = "version-regex-hostile", version = string.rep("1.", 50000) .. "-" .. string.rep("a.", 50000) .. "!" }
step{ "reached", timeout = "2s", run = function() error("accepted the version") end }
