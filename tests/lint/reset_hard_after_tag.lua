-- lint: none
runbook { name = "good", version = "1.0.0" }

step("Go back", function(p)
  git.tag{ repo = "/tmp/app", name = "before-rollback" }
  git.reset{ repo = "/tmp/app", ref = "v1.0.0", hard = true }
end)
