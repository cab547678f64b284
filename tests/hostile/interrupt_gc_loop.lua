-- test: Ctrl-C during a looping __gc finalizer (refused: setmetatable allows no __gc)
-- expect: exit=2 within=3s
-- interrupt: 1s
-- output: __gc finalizers are not allowed

runbook { name = "interrupt-gc-loop", version = "1.0.0" }
step{ "garbage", timeout = "60s", run = function()
  for _ = 1, 10 do setmetatable({}, { __gc = function() while true do end end }) end
  while true do local t = {} end
end }
