-- runbooks/assess.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

-- report.trigger answers with its verdict, as live.
local function fakes(over)
  local f = { ["report.trigger"] = function(a) return { level = a.level, decision = a.decision, reasons = a.reasons } end }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

local function verdict(r) return t.called(r, "report.trigger").args end

t.case("dependencies: an application that does not answer is RED, an immediate L1 rollback", function()
  local r = t.run("assess.lua", {
    params = { procedure = "dependencies", health = { "http://127.0.0.1:5000/health" } },
    fakes = fakes{ ["http.get"] = { status = 503, body = "" } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  local v = verdict(r)
  t.eq(v.level, "RED")
  t.ok(v.decision:find("dependency-rollback level=L1", 1, true), v.decision)
  t.eq(v.reasons, { "critical system failure: the application does not answer" })
end)

t.case("dependencies: healthy and fast is GREEN, no rollback", function()
  local r = t.run("assess.lua", {
    params = { procedure = "dependencies", health = { "http://127.0.0.1:5000/health" },
               sample_url = "http://127.0.0.1:5000/api", baseline_p95_ms = 100 },
    fakes = fakes{
      ["http.get"] = { status = 200, body = "" },
      ["http.sample"] = { n = 20, statuses = { ["200"] = 20 }, p50_ms = 50, p95_ms = 104 },
    },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.eq(verdict(r).level, "GREEN")
  t.eq(verdict(r).measures.degradation_pct, 4)
end)

t.case("node-api: an error rate over 10 % is P1", function()
  local r = t.run("assess.lua", {
    params = { procedure = "node-api", sample_url = "http://127.0.0.1:3001/api/projects" },
    fakes = fakes{ ["http.sample"] = { n = 20, statuses = { ["200"] = 14, ["502"] = 4, error = 2 }, p50_ms = 20, p95_ms = 80 } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.eq(verdict(r).level, "P1")
  t.eq(verdict(r).measures.error_rate, 30)
end)

t.case("assessing changes nothing", function()
  local r = t.run("assess.lua", {
    params = { procedure = "sprint", health = { "http://127.0.0.1:8000/health" } },
    fakes = fakes{ ["http.get"] = { status = 200, body = "" } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.eq(verdict(r).level, "LOW")
  for _, e in ipairs(r.effects) do
    t.ok(e.kind ~= "change" or e.name == "report.trigger", e.name .. " is a change")
  end
end)

t.case("nothing given to measure is an error, not a verdict", function()
  local r = t.run("assess.lua", { params = { procedure = "feature-flags" }, fakes = fakes() })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("nothing to measure", 1, true), r.error)
  t.not_called(r, "report.trigger")
end)
