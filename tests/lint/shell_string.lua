-- lint: 5 warning shell string
runbook { name = "bad", version = "1.0.0" }

step("Restart", function(p)
  exec{ "sh", "-c", "systemctl restart app && systemctl status app" }
end)
