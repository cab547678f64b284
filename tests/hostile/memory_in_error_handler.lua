-- test: memory exhaustion inside an xpcall handler
-- expect: exit=1 within=6s

runbook { name = "memory-in-error-handler", version = "1.0.0" }
step{ "hog", timeout = "4s", run = function()
  xpcall(function() error("x") end, function() local s = "x"; while true do s = s .. s end end)
  error("returned")
end }
