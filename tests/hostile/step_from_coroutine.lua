-- test: step() from a coroutine resumed inside a step
-- expect: exit=1|2 within=4s

runbook { name = "step-from-coroutine", version = "1.0.0" }
step{ "outer", timeout = "2s", run = function()
  local co = coroutine.wrap(function() for i = 1, 100 do step("co " .. i, function() end) end end)
  co()
  error("coroutine step() calls were not refused")
end }
