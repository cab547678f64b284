-- test: exec with 3 MB of arguments (E2BIG): a clear error
-- expect: exit=1 within=4s

runbook { name = "exec-huge-argv", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  local argv = { "true" }
  for i = 2, 30000 do argv[i] = string.rep("a", 100) end
  exec(argv)
end }
