-- test: an error object whose __tostring fails (SIGABRT, no message)
-- expect: exit=1 within=4s
-- output: always step ran

runbook { name = "error-tostring-fails", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __tostring = function() error("tostring failed too") end }))
end }
step{ "cleanup", always = true, run = function() log.info("always step ran") end }
