-- test: a table grown one slot at a time until the ceiling
-- expect: exit=1 within=6s

runbook { name = "memory-table-growth", version = "1.0.0" }
step{ "grow", timeout = "4s", run = function()
  local t = {}
  local i = 0
  while true do i = i + 1; t[i] = i end
end }
