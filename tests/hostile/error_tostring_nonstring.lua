-- test: an error object whose __tostring returns a table
-- expect: exit=1 within=4s
-- output: always step ran

runbook { name = "error-tostring-nonstring", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  error(setmetatable({}, { __tostring = function() return {} end }))
end }
step{ "cleanup", always = true, run = function() log.info("always step ran") end }
