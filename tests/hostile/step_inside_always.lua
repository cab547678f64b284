-- test: step() called inside an always step after a failure
-- expect: exit=1|2 within=4s

runbook { name = "step-inside-always", version = "1.0.0" }
step{ "fails", timeout = "2s", run = function() error("first failure") end }
step{ "cleanup", always = true, timeout = "2s", run = function()
  for i = 1, 100 do step("late " .. i, function() end) end
end }
