-- test: load() of a binary chunk (text only)
-- expect: exit=2 within=4s

runbook { name = "load-binary-chunk", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f, err = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8", "x", "b")
  if f then f() end
  error(err or "loaded a binary chunk")
end }
