-- test: exec of an empty argv and of an empty program name
-- expect: exit=1 within=4s

runbook { name = "exec-empty-argv", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  pcall(exec, {})
  exec{ "" }
end }
