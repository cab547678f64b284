-- lint: 7 error unknown primitive 'fs.bakup': did you mean 'fs.backup'?
runbook { name = "bad", version = "1.0.0" }

step("Back up", function(p)
  local dir = "/tmp/app"
  log.info("backing up " .. dir)
  fs.bakup{ path = dir .. "/config" }
end)
