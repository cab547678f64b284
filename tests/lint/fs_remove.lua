-- lint: 5 warning fs.remove with no backup before it
runbook { name = "bad", version = "1.0.0" }

step("Remove", function(p)
  fs.remove("/tmp/app/cache/")
end)
