-- test: recursion through string.gsub with a replacement function
-- expect: exit=2 within=4s

runbook { name = "c-stack-overflow-gsub", version = "1.0.0" }
step{ "recurse", timeout = "2s", run = function()
  local function f(s) return (s:gsub(".", f)) end
  f("ab")
end }
