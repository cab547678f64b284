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

t.case("the crash matrix finds a run that differs after a resume", function()
  local n = 0
  t.crash_matrix("unsafe.lua", {
    fakes = { ["http.get"] = function() n = n + 1; return { status = 200, json = { n = n } } end },
  })
end)

t.case("a fake that loops forever is stopped", function()
  t.run("rollback.lua", { fakes = { ["git.head"] = function() while true do end end } })
end)
