-- test: a __gc finalizer that loops at lua_close (journaled succeeded, never exited)
-- expect: exit=0|1|2 within=5s

runbook { name = "gc-loop-at-exit", version = "1.0.0" }
keep = setmetatable({}, { __gc = function() while true do end end })
step{ "ok", timeout = "2s", run = function() log.info("step done") end }
