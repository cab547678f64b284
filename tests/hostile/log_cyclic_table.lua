-- test: log.warn of a cyclic table and of binary bytes
-- expect: exit=1 within=4s

runbook { name = "log-cyclic-table", version = "1.0.0" }
step{ "log", timeout = "2s", run = function()
  local t = {}
  t.t = t
  log.warn(t)
  log.warn("\0\255\254 invalid utf-8 \27[2J")
  error("done")
end }
