-- test: runbook exec /dev/zero (read forever): refused in milliseconds
-- expect: exit=2 within=2s
-- target: /dev/zero

runbook { name = "exec-runbook-dev-zero", version = "1.0.0" }
step("never", function() end)
