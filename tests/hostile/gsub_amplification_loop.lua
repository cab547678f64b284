-- test: repeated doubling gsub until the ceiling
-- expect: exit=1 within=4s

runbook { name = "gsub-amplification-loop", version = "1.0.0" }
step{ "gsub", timeout = "2s", run = function()
  local s = "ab"
  while true do s = s:gsub(".", "%0%0") end
end }
