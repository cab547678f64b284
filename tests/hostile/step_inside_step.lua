-- test: step() called inside a running step (heap-use-after-free): refused as a runbook error
-- expect: exit=1|2 within=4s

runbook { name = "step-inside-step", version = "1.0.0" }
step{ "outer", timeout = "2s", run = function()
  step("inner", function() end)
end }
step("after", function() end)
