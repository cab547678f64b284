-- test: unbounded Lua recursion (stack overflow)
-- expect: exit=2 within=4s

runbook { name = "lua-recursion-deep", version = "1.0.0" }
step{ "recurse", timeout = "2s", run = function()
  local function f(n) return 1 + f(n + 1) end
  f(1)
end }
