-- test: memory exhaustion inside pcall, then allocation again in the same step
-- expect: exit=1 within=6s

runbook { name = "memory-in-pcall", version = "1.0.0" }
step{ "hog", timeout = "4s", run = function()
  pcall(function() local s = "x"; while true do s = s .. s end end)
  local again = string.rep("z", 1 << 20)
  error("the step went on after the ceiling: " .. #again)
end }
