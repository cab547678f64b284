-- test: an endless stream of log lines: the deadline holds
-- expect: exit=1 within=4s

runbook { name = "log-many-lines", version = "1.0.0" }
step{ "log", timeout = "2s", run = function()
  local i = 0
  while true do i = i + 1; log.info("line " .. i) end
end }
