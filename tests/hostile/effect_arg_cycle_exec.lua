-- test: a cyclic table as exec's env argument
-- expect: exit=2 within=4s

runbook { name = "effect-arg-cycle-exec", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  local env = {}
  env.loop = env
  exec{ "true", env = env }
end }
