local t = require "runbook.test"

local fakes = {
  ["git.head"] = { commit = "bad1", short = "bad1" },
  ["http.get"] = { status = 200, json = { version = "1.0.0" } },
}

t.case("a crash before the checkout, then resume", function()
  -- effects: 1 http.post (pause), 2 git.head, 3 git.checkout, 4 wait_healthy, 5 http.get, 6 http.post
  local r = t.run("rollback.lua", { fakes = fakes, crash_at = 3 })
  t.eq(r.outcome, "crashed")
  t.eq(#r.effects, 3)
  t.eq(r.effects[3].state, "begun")
  t.not_called(r, "http.get")
  -- git.checkout's verify finds it did not take place (under test nothing acted): done again.
  local r2 = t.resume(r)
  t.eq(r2.outcome, "succeeded")
  t.eq(r2.effects[1].origin, "journal")
  t.eq(r2.effects[3].origin, "redone")
  t.called(r2, "http.post", { url = "http://127.0.0.1:3001/api/queue/resume-all" })
end)

t.case("a change nothing can verify stops the resume until redo", function()
  local r = t.run("rollback.lua", { fakes = fakes, crash_at = 1 })
  t.eq(r.outcome, "crashed")
  local r2 = t.resume(r)
  t.eq(r2.exit_code, 3)
  local r3 = t.resume(r2, { redo = true })
  t.eq(r3.outcome, "succeeded")
  t.eq(#r3.effects, 6)
end)

t.case("a crash after the checkout does not repeat it", function()
  local r = t.run("rollback.lua", { fakes = fakes, crash_at = 4 })
  t.eq(r.outcome, "crashed")
  local r2 = t.resume(r)
  t.eq(r2.outcome, "succeeded")
  local checkout = t.called(r2, "git.checkout")
  t.eq(checkout.origin, "journal")
end)

t.case("the crash matrix of the rollback", function()
  local m = t.crash_matrix("rollback.lua", { fakes = fakes })
  t.eq(m.boundaries, 3)
  t.eq(m.outcome, "succeeded")
end)
