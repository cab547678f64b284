-- lint: 5 warning git.clean with no backup before it
runbook { name = "bad", version = "1.0.0" }

step("Clean", function(p)
  git.clean{ repo = "/tmp/app" }
end)
