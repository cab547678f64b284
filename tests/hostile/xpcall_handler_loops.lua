-- test: an xpcall message handler that loops (hooks were off once the hook raised)
-- expect: exit=1 within=4s

runbook { name = "xpcall-handler-loops", version = "1.0.0" }
step{ "loop", timeout = "2s", run = function()
  xpcall(function() error("x") end, function() while true do end end)
end }
