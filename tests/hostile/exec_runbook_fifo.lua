-- test: runbook exec of a FIFO nobody writes to
-- expect: exit=2 within=2s
-- fifo: pipe.lua
-- target: pipe.lua

runbook { name = "exec-runbook-fifo", version = "1.0.0" }
step("never", function() end)
