-- test: runbook{} declared again inside a step
-- expect: exit=1|2 within=4s

runbook { name = "runbook-inside-step", version = "1.0.0" }
step{ "outer", timeout = "2s", run = function()
  runbook { name = "other", version = "2.0.0" }
end }
