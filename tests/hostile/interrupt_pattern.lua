-- test: Ctrl-C during a backtracking pattern
-- expect: exit=130 within=3s
-- interrupt: 1s

runbook { name = "interrupt-pattern", version = "1.0.0" }
step{ "match", timeout = "60s", run = function()
  string.find(string.rep("a", 40), string.rep("a?", 40) .. string.rep("a", 40))
end }
