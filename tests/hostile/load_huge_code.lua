-- test: load() of 40 MB of code
-- expect: exit=1 within=5s

runbook { name = "load-huge-code", version = "1.0.0" }
step{ "load", timeout = "3s", run = function()
  local f = load(string.rep("a = 1 ", 7000000))
  if f then f() end
  error("loaded and ran")
end }
