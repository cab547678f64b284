-- test: pcall in an endless loop trying to swallow the deadline
-- expect: exit=1 within=4s

runbook { name = "pcall-swallow-loop", version = "1.0.0" }
step{ "loop", timeout = "2s", run = function()
  while true do pcall(function() while true do end end) end
end }
