local t = require "runbook.test"

t.case("rolls back to last-good and verifies", function()
  local r = t.run("rollback.lua", {
    params = { app = "/srv/app" },
    fakes = {
      ["git.head"] = { commit = "bad1", short = "bad1" },
      ["http.get"] = function(args) return { status = 200, json = { version = "1.0.0" } } end,
    },
  })
  t.eq(r.outcome, "succeeded")
  t.eq(r.exit_code, 0)
  t.called(r, "git.checkout", { ref = "last-good" })
  t.not_called(r, "git.reset")
  t.called(r, "http.post", { url = "http://127.0.0.1:3001/api/queue/resume-all" })
  t.eq(r.logs[1].message, "HEAD is bad1")
  t.eq(#r.steps, 4)
end)

t.case("an unhealthy app keeps the queues paused", function()
  local r = t.run("rollback.lua", { fakes = { ["http.wait_healthy"] = t.fail("not healthy") } })
  t.eq(r.outcome, "failed")
  t.eq(r.exit_code, 1)
  t.not_called(r, "http.post", { url = "http://127.0.0.1:3001/api/queue/resume-all" })
end)

t.case("already at last-good: no checkout", function()
  local r = t.run("rollback.lua", {
    fakes = {
      ["git.head"] = { commit = "good", short = "good", tag = "last-good" },
      ["http.get"] = { status = 200, json = { version = "1.0.0" } },
    },
  })
  t.eq(r.outcome, "succeeded")
  t.not_called(r, "git.checkout")
end)

t.case("a fake function sees the arguments", function()
  local seen
  local r = t.run("rollback.lua", {
    params = { url = "http://10.0.0.9:8080" },
    fakes = {
      ["http.get"] = function(args) seen = args.url; return { status = 200, json = { version = "1.0.0" } } end,
    },
  })
  t.eq(seen, "http://10.0.0.9:8080/version")
  t.eq(r.effects[#r.effects].name, "http.post")
  t.eq(r.effects[#r.effects].step, "resume the queues")
end)

t.case("a timeout stops the step as its deadline would", function()
  local r = t.run("rollback.lua", { fakes = { ["http.wait_healthy"] = t.timeout() } })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("exceeded its timeout", 1, true), r.error)
  t.not_called(r, "http.post", { url = "http://127.0.0.1:3001/api/queue/resume-all" })
end)

t.case("no fake: the planned result, nothing touches the world", function()
  -- git.head of a repository that does not exist answers its planned shape.
  local r = t.run("rollback.lua", { params = { app = "/nonexistent/app" } })
  t.eq(r.outcome, "failed")  -- the planned http.get has no json
  t.called(r, "git.checkout", { repo = "/nonexistent/app" })
  t.eq(r.effects[1].result.planned, true)
end)
