-- test: an xpcall message handler that errors (error in error handling)
-- expect: exit=1 within=4s

runbook { name = "xpcall-handler-recurses", version = "1.0.0" }
step{ "loop", timeout = "2s", run = function()
  local function h(m) error({ m }) end
  local ok = xpcall(function() error("x") end, h)
  error("xpcall returned " .. tostring(ok))
end }
