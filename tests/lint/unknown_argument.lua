-- lint: 5 error unknown argument 'dri' to 'fs.backup': did you mean 'dir'?
runbook { name = "bad", version = "1.0.0" }

step("Back up", function(p)
  fs.backup{ path = "/tmp/app/config", dri = "/tmp/backups" }
end)
