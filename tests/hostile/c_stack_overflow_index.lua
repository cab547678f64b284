-- test: recursion through an __index function (C stack overflow)
-- expect: exit=2 within=4s

runbook { name = "c-stack-overflow-index", version = "1.0.0" }
step{ "recurse", timeout = "2s", run = function()
  local t
  t = setmetatable({}, { __index = function(self, k) return self[k .. "x"] end })
  return t.a
end }
