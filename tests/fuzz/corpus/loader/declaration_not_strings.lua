-- test: name, version and summary of the wrong types
-- expect: exit=2 within=4s

runbook { name = {}, version = 1.0, summary = print }
step("never", function() end)
