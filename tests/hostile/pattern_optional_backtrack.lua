-- test: a?^n a^n against a^n: exponential backtracking in C
-- expect: exit=1 within=4s

runbook { name = "pattern-optional-backtrack", version = "1.0.0" }
step{ "match", timeout = "2s", run = function()
  local n = 40
  string.find(string.rep("a", n), string.rep("a?", n) .. string.rep("a", n))
end }
