local t = require "runbook.test"

t.case("passes", function()
  t.eq(1 + 1, 2)
end)

t.case("outcome differs", function()
  local r = t.run("rollback.lua", { fakes = { ["http.wait_healthy"] = t.fail("not healthy") } })
  t.eq(r.outcome, "succeeded")
end)

t.case("called with other arguments", function()
  local r = t.run("rollback.lua", { fakes = { ["git.head"] = { short = "x" } } })
  t.called(r, "git.checkout", { ref = "v9" })
end)

t.case("deep difference", function()
  t.eq({ a = { b = { 1, 2, 3 } } }, { a = { b = { 1, 2, 4 } } })
end)

t.case("a plain error", function()
  local x = nil
  return x.field
end)
