-- test: a busy loop past the deadline inside xpcall whose handler loops
-- expect: exit=1 within=4s

runbook { name = "xpcall-handler-loops-after-deadline", version = "1.0.0" }
step{ "loop", timeout = "2s", run = function()
  xpcall(function() while true do end end, function() while true do end end)
end }
