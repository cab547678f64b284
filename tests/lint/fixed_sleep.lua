-- lint: 6 warning a fixed sleep followed by a check
runbook { name = "bad", version = "1.0.0" }

step("Restart", function(p)
  exec{ "systemctl", "restart", "app" }
  sleep("10s")
  if not http.check{ url = "http://127.0.0.1:8080/health" } then error("not healthy") end
end)
