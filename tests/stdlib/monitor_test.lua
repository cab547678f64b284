-- runbook.monitor under runbook test: a watch samples until its duration, stops on what goes wrong.
local t = require "runbook.test"
local H = require "helpers"
local monitor = require "runbook.monitor"

local function count(r, name)
  local n = 0
  for _, e in ipairs(r.effects) do if e.name == name then n = n + 1 end end
  return n
end

t.case("watch: samples every interval until the duration is over", function()
  local r = H.run("watch", { ["time.now"] = H.clock(5), ["http.get"] = { status = 200, elapsed_ms = 1 },
                             ["fs.exists"] = H.const(true), ["fs.grep"] = { count = 4, lines = {} } })
  t.eq(r.outcome, "succeeded")
  local res = H.result(r)
  t.ok(res.samples >= 2, "more than one sample: " .. tostring(res.samples))
  t.eq(count(r, "http.get"), res.samples)
  t.eq(count(r, "sleep"), res.samples - 1)
  t.eq(res.new_errors, 0)
  t.ok(H.logged(r, "monitored " .. res.samples .. " samples"), "the summary is logged")
end)

t.case("watch: a URL failing max_failures samples in a row stops it", function()
  local r = H.run("watch", { ["time.now"] = H.clock(1), ["http.get"] = { status = 502 }, ["fs.exists"] = H.const(false) })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("http://127.0.0.1:8000/health failed 3 samples in a row", 1, true), r.error)
end)

t.case("watch: a log gaining more than max_new_errors lines stops it", function()
  local r = H.run("watch", { ["time.now"] = H.clock(1), ["http.get"] = { status = 200 }, ["fs.exists"] = H.const(true),
                             ["fs.grep"] = t.sequence({ { count = 10 }, { count = 11 }, { count = 20 } }) })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("10 new error lines in /srv/app/file while monitoring", 1, true), r.error)
end)

t.case("watch: each(sample) may stop it", function()
  local r = H.run("watch_each", { ["time.now"] = H.clock(1), ["http.get"] = { status = 200 } })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("queue backlog at sample 2", 1, true), r.error)
end)

t.case("resources: memory and disk with the limits they pass", function()
  local r = H.run("resources", {
    ["fs.read"] = H.const("MemTotal:  1000000 kB\nMemAvailable:  30000 kB\n"),
    ["fs.disk_free"] = { used_percent = 93.5, total = 100, free = 6, avail = 6 },
  })
  t.called(r, "fs.read", { path = "/proc/meminfo" })
  t.called(r, "fs.disk_free", { path = "/srv/app/file" })
  local res = H.result(r)
  t.eq(res.ok, false)
  t.eq(res.disk_used_pct, 93.5)
  t.eq(res.memory_available_mib, 29)
  t.eq(res.problems, { "disk 94% used (limit 90%)", "only 3% of memory available" })
end)

t.case("bad arguments name the call and the argument", function()
  local e = H.error_of(monitor.watch, { urls = { "http://x/" } })
  t.ok(e:find("monitor.watch: bad argument 'duration' (duration like \"30s\" expected, got no value)", 1, true), e)
  e = H.error_of(monitor.watch, { urls = { "http://x/" }, duration = "1m", max_failures = "3" })
  t.ok(e:find("monitor.watch: bad argument 'max_failures' (integer expected, got string '3')", 1, true), e)
  e = H.error_of(monitor.watch, { urls = { "http://x/" }, duration = "1m", each = true })
  t.ok(e:find("monitor.watch: bad argument 'each' (function expected, got boolean)", 1, true), e)
  e = H.error_of(monitor.resources, { max_disk_pct = "90%" })
  t.ok(e:find("monitor.resources: bad argument 'max_disk_pct' (number expected, got string '90%')", 1, true), e)
end)
