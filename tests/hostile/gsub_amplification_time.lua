-- test: gsub whose every match backtracks over the rest of 200,000 bytes
-- expect: exit=1 within=4s

runbook { name = "gsub-amplification-time", version = "1.0.0" }
step{ "gsub", timeout = "2s", run = function()
  string.gsub(string.rep("a", 200000), "a-b", "x")
end }
