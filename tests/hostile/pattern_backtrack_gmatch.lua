-- test: a backtracking pattern through gmatch
-- expect: exit=1 within=4s

runbook { name = "pattern-backtrack-gmatch", version = "1.0.0" }
step{ "match", timeout = "2s", run = function()
  for _ in string.gmatch(string.rep("a", 30000), "a-a-a-b") do end
end }
