-- test: a backtracking string.match inside pcall
-- expect: exit=1 within=4s

runbook { name = "pattern-backtrack-match-pcall", version = "1.0.0" }
step{ "match", timeout = "2s", run = function()
  pcall(string.match, string.rep("a", 36), string.rep("a*", 36) .. "b")
  error("pcall swallowed the stop or the match finished")
end }
