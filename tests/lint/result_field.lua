-- lint: 6 error 'git.head' returns no field 'tagg': did you mean 'h.tag'?
runbook { name = "bad", version = "1.0.0" }

step("Look", function(p)
  local h = git.head{ repo = "/tmp/app" }
  print(h.tagg)
end)
