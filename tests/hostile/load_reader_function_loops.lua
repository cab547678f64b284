-- test: load() given a reader function that never ends (text only: refused or stopped)
-- expect: exit=2 within=4s

runbook { name = "load-reader-function-loops", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f, err = load(function() return "a = 1 " end)
  error(err or "loaded")
end }
