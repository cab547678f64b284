-- test: resuming fresh busy coroutines in a loop to swallow the stop
-- expect: exit=1 within=4s

runbook { name = "coroutine-swallow-loop", version = "1.0.0" }
step{ "swallow", timeout = "2s", run = function()
  while true do coroutine.resume(coroutine.create(function() while true do end end)) end
end }
