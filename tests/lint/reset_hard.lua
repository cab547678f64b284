-- lint: 5 warning git.reset{ hard = true } with no backup before it
runbook { name = "bad", version = "1.0.0" }

step("Go back", function(p)
  git.reset{ repo = "/tmp/app", ref = "v1.0.0", hard = true }
end)
