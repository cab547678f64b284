-- Not resume-safe under a world that changes: what it posts depends on a probe that a resume
-- reads again (tests/rbtest/failing_test.lua's crash matrix finds it).
runbook{ name = "unsafe", version = "1.0.0" }
step("count", function()
  local v = http.get("http://127.0.0.1:9/n")
  http.post{ url = "http://127.0.0.1:9/set", json = { n = v.json.n } }
  http.post{ url = "http://127.0.0.1:9/done" }
end)
