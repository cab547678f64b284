-- lint: 5 warning shell string
runbook { name = "bad", version = "1.0.0" }

step("Restart", function(p)
  local cmd = "bash -c 'systemctl restart app'"
  log.info(cmd)
end)
