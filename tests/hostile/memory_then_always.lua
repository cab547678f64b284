-- test: memory exhaustion in a step, then an always step that allocates (the ceiling was sticky)
-- expect: exit=1 within=6s
-- output: cleanup ran with 10485760 bytes

runbook { name = "memory-then-always", version = "1.0.0" }
step{ "hog", timeout = "4s", run = function()
  local t = {}
  for i = 1, math.maxinteger do t[i] = string.rep("x", 1 << 20) .. i end
end }
step{ "cleanup", always = true, timeout = "2s", run = function()
  local s = string.rep("y", 10 << 20)
  log.info("cleanup ran with " .. #s .. " bytes")
end }
