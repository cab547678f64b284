-- test: a __gc finalizer that raises an error with a failing __tostring at lua_close
-- expect: exit=0|1|2 within=5s

runbook { name = "gc-error-at-exit", version = "1.0.0" }
keep = setmetatable({}, { __gc = function()
  error(setmetatable({}, { __tostring = function() error("again") end }))
end })
step{ "ok", timeout = "2s", run = function() log.info("step done") end }
