-- test: runbook exec of a directory
-- expect: exit=2 within=2s
-- target: /tmp

runbook { name = "exec-runbook-directory", version = "1.0.0" }
step("never", function() end)
