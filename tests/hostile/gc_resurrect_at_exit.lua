-- test: __gc finalizers that keep creating new finalizable objects at lua_close
-- expect: exit=0|1|2 within=5s

runbook { name = "gc-resurrect-at-exit", version = "1.0.0" }
local mt = {}
mt.__gc = function(o) for _ = 1, 10 do setmetatable({}, mt) end end
keep = setmetatable({}, mt)
step{ "ok", timeout = "2s", run = function() log.info("step done") end }
