-- test: table.sort with a comparator that loops
-- expect: exit=1 within=4s

runbook { name = "table-sort-comparator-loops", version = "1.0.0" }
step{ "sort", timeout = "2s", run = function()
  local t = {}
  for i = 1, 100 do t[i] = i end
  table.sort(t, function() while true do end end)
end }
