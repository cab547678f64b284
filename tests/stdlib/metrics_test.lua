-- runbook.metrics under runbook test: the file written, the statistics returned.
local t = require "runbook.test"
local H = require "helpers"
local metrics = require "runbook.metrics"

local function written(r)
  for _, e in ipairs(r.effects) do
    if e.name == "fs.write" then return json.decode(e.args.content), e.args.path end
  end
  error("fs.write was not called", 2)
end

t.case("record: a first entry creates the file and its directory", function()
  local r = H.run("record", { ["fs.exists"] = H.const(false) }, { path = "/srv/app/metrics/rollbacks.json" })
  t.eq(r.outcome, "succeeded")
  t.called(r, "fs.mkdir", { path = "/srv/app/metrics" })
  local m, path = written(r)
  t.eq(path, "/srv/app/metrics/rollbacks.json")
  t.eq(m.rollbacks, { { cause = "bad deploy", recovery_time_minutes = 12 } })
  t.eq(H.result(r), { total_rollbacks = 1, by_cause = { ["bad deploy"] = 1 }, average_recovery_time = 12 })
end)

t.case("record: appends to what is there and recomputes the statistics", function()
  local old = json.encode({ rollbacks = { { cause = "bad deploy", recovery_time_minutes = 20 }, { recovery_time_minutes = 4 } } })
  local r = H.run("record", { ["fs.exists"] = H.const(true), ["fs.read"] = H.const(old) })
  local m = written(r)
  t.eq(#m.rollbacks, 3)
  t.eq(H.result(r), { total_rollbacks = 3, by_cause = { ["bad deploy"] = 2, unknown = 1 }, average_recovery_time = 12 })
end)

t.case("read: a file that is not JSON reads as no rollbacks", function()
  local r = H.run("read", { ["fs.exists"] = H.const(true), ["fs.read"] = H.const("not json {") })
  t.eq(H.result(r).statistics, { total_rollbacks = 0, by_cause = {}, average_recovery_time = 0 })
  t.not_called(r, "fs.write")
end)

t.case("bad arguments name the call and the argument", function()
  local e = H.error_of(metrics.record, { path = "/x.json" })
  t.ok(e:find("metrics.record: bad argument 'entry' (table of name = value expected, got no value)", 1, true), e)
  e = H.error_of(metrics.record, { path = "/x.json", entry = { recovery_time_minutes = "12" } })
  t.ok(e:find("metrics.record: bad argument 'entry' (entry.recovery_time_minutes must be a number", 1, true), e)
  e = H.error_of(metrics.read, { file = "/x.json" })
  t.ok(e:find("metrics.read: unknown argument 'file'", 1, true), e)
end)
