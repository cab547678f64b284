-- test: a thousand step() calls inside a running step (forces the steps vector to reallocate)
-- expect: exit=1|2 within=4s

runbook { name = "step-inside-step-many", version = "1.0.0" }
step{ "outer", timeout = "2s", run = function()
  for i = 1, 1000 do pcall(step, "inner " .. i, function() end) end
  error("still here: the nested step() calls were not refused")
end }
