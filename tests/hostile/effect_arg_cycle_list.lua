-- test: a list that contains itself as exec's argv
-- expect: exit=2 within=4s

runbook { name = "effect-arg-cycle-list", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  local argv = { "echo" }
  argv[2] = argv
  exec(argv)
end }
