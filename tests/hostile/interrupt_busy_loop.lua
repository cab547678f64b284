-- test: Ctrl-C during a busy loop in a step with a long timeout
-- expect: exit=130 within=3s
-- interrupt: 1s

runbook { name = "interrupt-busy-loop", version = "1.0.0" }
step{ "loop", timeout = "60s", run = function() while true do end end }
