-- test: log.info of a value whose __tostring fails
-- expect: exit=1 within=4s

runbook { name = "log-tostring-fails", version = "1.0.0" }
step{ "log", timeout = "2s", run = function()
  log.info(setmetatable({}, { __tostring = function() error("tostring failed") end }))
  error("logged it")
end }
