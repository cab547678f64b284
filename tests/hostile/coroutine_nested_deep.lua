-- test: coroutines resumed inside coroutines 100,000 deep (C stack)
-- expect: exit=2 within=4s

runbook { name = "coroutine-nested-deep", version = "1.0.0" }
step{ "nest", timeout = "2s", run = function()
  local function dive(n) return coroutine.wrap(function() return dive(n + 1)() end) end
  dive(1)()
end }
