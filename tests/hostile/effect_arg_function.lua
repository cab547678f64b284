-- test: a function and a coroutine inside an effect argument
-- expect: exit=2 within=4s

runbook { name = "effect-arg-function", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  exec{ "true", env = { f = print, co = coroutine.create(print) } }
end }
