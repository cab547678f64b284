-- test: memory exhaustion inside a __gc finalizer
-- expect: exit=2 within=6s

runbook { name = "memory-in-gc", version = "1.0.0" }
step{ "hog", timeout = "4s", run = function()
  for _ = 1, 10 do setmetatable({}, { __gc = function() local s = "x"; while true do s = s .. s end end }) end
  for i = 1, 2e6 do local t = { i } end
  error("done")
end }
