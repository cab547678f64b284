-- test: table.sort whose comparator sorts recursively
-- expect: exit=2 within=4s

runbook { name = "c-stack-overflow-sort", version = "1.0.0" }
step{ "recurse", timeout = "2s", run = function()
  local function cmp(a, b) table.sort({ 3, 2, 1 }, cmp); return a < b end
  table.sort({ 3, 2, 1 }, cmp)
end }
