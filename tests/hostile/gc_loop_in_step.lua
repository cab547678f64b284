-- test: a __gc finalizer that loops, collected during a step
-- expect: exit=2 within=4s

runbook { name = "gc-loop-in-step", version = "1.0.0" }
step{ "garbage", timeout = "2s", run = function()
  for _ = 1, 50 do setmetatable({}, { __gc = function() while true do end end }) end
  for i = 1, 2e6 do local t = { i } end
  error("the finalizers did not run or did not loop; fail anyway")
end }
