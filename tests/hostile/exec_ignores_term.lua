-- test: exec of a child that ignores TERM, past the step deadline
-- expect: exit=1 within=4s

runbook { name = "exec-ignores-term", version = "1.0.0" }
step{ "exec", timeout = "1s", run = function()
  exec{ "sh", "-c", "trap '' TERM; sleep 30", timeout = "30s" }
end }
