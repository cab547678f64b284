-- test: an error table whose metatable __index errors (the host reads .message, .effect)
-- expect: exit=1 within=4s
-- output: always step ran

runbook { name = "error-index-errors", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __index = function(_, k) error("no field " .. tostring(k)) end }))
end }
step{ "cleanup", always = true, run = function() log.info("always step ran") end }
