-- test: load() of 10,000 nested function definitions
-- expect: exit=1 within=4s

runbook { name = "load-nested-functions", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f, err = load(string.rep("return function() ", 10000) .. string.rep("end ", 10000))
  error(err or "loaded")
end }
