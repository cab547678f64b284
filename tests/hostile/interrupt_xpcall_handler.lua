-- test: Ctrl-C during a looping xpcall message handler
-- expect: exit=130 within=3s
-- interrupt: 1s

runbook { name = "interrupt-xpcall-handler", version = "1.0.0" }
step{ "loop", timeout = "60s", run = function()
  xpcall(function() error("x") end, function() while true do end end)
end }
