-- test: an error with a failing __tostring raised while declaring
-- expect: exit=1|2 within=4s

runbook { name = "error-at-declaration-bad-tostring", version = "1.0.0" }
error(setmetatable({}, { __tostring = function() error("nope") end }))
step("never", function() end)
