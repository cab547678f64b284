-- test: gsub replacing each of 1e6 bytes by 1 KB (1 GB result)
-- expect: exit=1 within=4s

runbook { name = "gsub-amplification-memory", version = "1.0.0" }
step{ "gsub", timeout = "2s", run = function()
  string.rep("a", 1000000):gsub(".", string.rep("x", 1024))
end }
