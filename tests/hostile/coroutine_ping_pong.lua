-- test: two coroutines resuming each other forever
-- expect: exit=1 within=4s

runbook { name = "coroutine-ping-pong", version = "1.0.0" }
step{ "pingpong", timeout = "2s", run = function()
  local ping, pong
  ping = coroutine.wrap(function() while true do pong(); coroutine.yield() end end)
  pong = coroutine.wrap(function() while true do coroutine.yield() end end)
  while true do ping() end
end }
