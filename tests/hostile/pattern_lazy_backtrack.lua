-- test: .-.-.-.-x against 20,000 a's
-- expect: exit=1 within=4s

runbook { name = "pattern-lazy-backtrack", version = "1.0.0" }
step{ "match", timeout = "2s", run = function()
  string.find(string.rep("a", 20000), ".-.-.-.-x")
end }
