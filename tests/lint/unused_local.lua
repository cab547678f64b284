-- lint: 5 warning unused variable 'stale'
runbook { name = "bad", version = "1.0.0" }

step("Look", function(p)
  local stale = fs.exists("/tmp/app/stale")
  log.info("looked")
end)
