-- A rollback under test (tests/test_command_test.cc): pause the queues, roll back to last-good
-- unless already there, verify, resume the queues only when healthy.
runbook{
  name = "rollback",
  version = "1.0.0",
  params = {
    app = { type = "path", default = "/srv/app" },
    url = { type = "url", default = "http://127.0.0.1:3001" },
  },
}

step("pause the queues", function(p)
  http.post{ url = p.url .. "/api/queue/pause-all" }
end)

step("roll back", function(p)
  local head = git.head(p.app)
  log.info("HEAD is " .. tostring(head.short))
  if head.tag ~= "last-good" then
    git.checkout{ repo = p.app, ref = "last-good" }
  end
end)

step("verify", function(p)
  http.wait_healthy{ url = p.url .. "/health", timeout = "30s" }
  local v = http.get(p.url .. "/version")
  if not v.json or v.json.version ~= "1.0.0" then
    error("the app reports version " .. tostring(v.json and v.json.version))
  end
end)

step("resume the queues", function(p)
  http.post{ url = p.url .. "/api/queue/resume-all" }
end)
