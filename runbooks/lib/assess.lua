-- Assessment before action: measures what the source documents name as triggers (health,
-- endpoints, error rate, latency against a baseline, log errors, test failures, memory, the
-- database, queue length) and applies each document's decision rule, changing nothing. The
-- verdict and the numbers behind it go to report.trigger, so `runbook report` shows them as the
-- run's trigger. `local A = require "lib.assess"`.
local C = require "lib.common"
local A = {}

local function pct(n, d) return d > 0 and 100 * n / d or 0 end
local function r1(x)
  local y = math.floor(x * 10 + 0.5) / 10
  return y == math.floor(y) and math.tointeger(y) or y
end

-- One decimal, and an integer when it is one (5, not 5.0, in the reasons).
A.round = r1

-- Each measure is a table { name, value, text }; `m` collects them by name.
function A.new() return { values = {}, lines = {} } end

local function put(m, name, value, text)
  m.values[name] = value
  m.lines[#m.lines + 1] = text
  log.info("measured " .. text)
end

-- Health: does each URL answer 200? m.values.down = true when none of them does.
function A.health(m, urls, headers)
  local up, total = 0, 0
  for _, u in ipairs(urls or {}) do
    total = total + 1
    local r = http.get{ url = u, headers = headers, check = false, timeout = "10s" }
    if r.status == 200 then up = up + 1 end
  end
  if total == 0 then return end
  put(m, "health_up", up, string.format("health: %d of %d answer 200", up, total))
  m.values.down = up == 0
end

-- Endpoints failing (transport error or status >= 400), as a percentage.
function A.endpoints(m, urls, headers)
  local failing, total = {}, 0
  for _, u in ipairs(urls or {}) do
    total = total + 1
    local r = http.get{ url = u, headers = headers, check = false, timeout = "10s" }
    if not r.status or r.status >= 400 then failing[#failing + 1] = u .. " → " .. tostring(r.status or r.error) end
  end
  if total == 0 then return end
  local p = r1(pct(#failing, total))
  put(m, "endpoints_failing_pct", p, string.format("endpoints: %d of %d fail (%s %%)", #failing, total, p))
  m.values.endpoints_failing = #failing
  for _, f in ipairs(failing) do log.info("  failing: " .. f) end
end

-- n requests to url: error rate (transport errors and 5xx) and latency percentiles, and the
-- degradation against a baseline p95 when one is given.
function A.sample(m, url, n, headers, baseline_ms)
  if C.empty(url) then return end
  n = math.max(1, math.min(n or 20, 1000))
  -- One http.sample (a probe: one journal entry for all n requests). As the seeds count them,
  -- an error is a 5xx or no answer; a 4xx is the client's business.
  local r = http.sample{ url = url, n = n, headers = headers, timeout = "10s", concurrency = math.min(4, n) }
  local errors = 0
  for status, k in pairs(r.statuses or {}) do
    if status == "error" or (tonumber(status) or 0) >= 500 then errors = errors + k end
  end
  local count = math.max(1, r.n or n)
  local rate = r1(pct(errors, count))
  local p50, p95 = r.p50_ms or 0, r.p95_ms or 0
  put(m, "error_rate", rate, string.format("error rate: %d of %d requests (%s %%)", errors, count, rate))
  put(m, "p50_ms", p50, "p50: " .. p50 .. " ms")
  put(m, "p95_ms", p95, "p95: " .. p95 .. " ms")
  if baseline_ms and baseline_ms > 0 then
    local d = r1(pct(p95 - baseline_ms, baseline_ms))
    put(m, "degradation_pct", d, string.format("p95 %s ms against a baseline of %d ms: %s %% slower",
                                                p95, baseline_ms, d))
  end
end

-- Error lines in a log over the last `since` (fs.grep: a log of any size, nothing copied).
function A.log_errors(m, path, patterns, since, baseline)
  if C.empty(path) or not fs.exists(path) then return end
  if since == "" then since = nil end
  local g = fs.grep{ path = path, patterns = patterns or { "ERROR" }, max = 5, since = since }
  put(m, "log_errors", g.count, string.format("log: %d error lines in %s%s", g.count, path,
                                               since and (" over the last " .. since) or ""))
  if baseline and baseline >= 0 then m.values.log_errors_up = g.count > baseline end
  for _, l in ipairs(g.lines or {}) do log.info("  " .. l) end
end

-- The test suite (it writes caches and reports, so it runs live only): the percentage failing,
-- read from the summary line pytest, jest and mocha print ("3 failed, 40 passed").
function A.tests(m, argv, cwd)
  if C.empty(argv) then return end
  if run.dry_run then return log.info("tests: not run in a dry-run (a test suite writes; it runs live only)") end
  local a = { table.unpack(argv) }
  a.cwd, a.check, a.timeout = cwd, false, "20m"
  local r = exec(a)
  local out = (r.stdout or "") .. "\n" .. (r.stderr or "")
  local failed = tonumber(out:match("(%d+) failed")) or 0
  local passed = tonumber(out:match("(%d+) passed")) or 0
  if failed + passed == 0 then failed = r.code ~= 0 and 1 or 0; passed = r.code == 0 and 1 or 0 end
  local p = r1(pct(failed, failed + passed))
  put(m, "tests_failing_pct", p, string.format("tests: %d failed, %d passed (%s %%)", failed, passed, p))
end

-- A dependency audit (npm audit --json, pip-audit -f json; it reads the registry's advisories,
-- so it runs live only): the vulnerabilities it reports, and how many more than the baseline.
-- Counted from npm's metadata.vulnerabilities (total, or the sum of the severities) or from
-- pip-audit's dependencies[].vulns; output that is neither is an error, never "0 found".
function A.audit(m, argv, cwd, baseline)
  if C.empty(argv) then return end
  if run.dry_run then return log.info("audit: not run in a dry-run (it asks the registry; it runs live only)") end
  local a = { table.unpack(argv) }
  a.cwd, a.check, a.timeout = cwd, false, "10m"
  local r = exec(a)
  local ok, doc = pcall(json.decode, r.stdout or "")
  local found
  if ok and type(doc) == "table" then
    local v = type(doc.metadata) == "table" and doc.metadata.vulnerabilities
    if type(v) == "table" then
      found = tonumber(v.total)
      if not found then
        found = 0
        for _, k in pairs(v) do found = found + (tonumber(k) or 0) end
      end
    else
      local deps = doc.dependencies or (doc[1] ~= nil and doc) or nil
      if type(deps) == "table" then
        found = 0
        for _, d in ipairs(deps) do
          if type(d) == "table" and type(d.vulns) == "table" then found = found + #d.vulns end
        end
      end
    end
  end
  if not found then
    error("audit: " .. table.concat(argv, " ") .. " printed neither npm audit --json nor pip-audit -f json output (exit " ..
          tostring(r.code) .. ")", 0)
  end
  put(m, "vulnerabilities", found, string.format("audit: %d vulnerabilities (baseline %d)", found, baseline or 0))
  m.values.vulnerabilities_new = math.max(0, found - (baseline or 0))
end

-- Third-party integrations (their status endpoints through the app, or the providers'):
-- the percentage failing (status >= 400 or no answer).
function A.integrations(m, urls, headers)
  local failing, total = 0, 0
  for _, u in ipairs(urls or {}) do
    total = total + 1
    local r = http.get{ url = u, headers = headers, check = false, timeout = "10s" }
    if not r.status or r.status >= 400 then
      failing = failing + 1
      log.info("  integration failing: " .. u .. " → " .. tostring(r.status or r.error))
    end
  end
  if total == 0 then return end
  local p = r1(pct(failing, total))
  put(m, "integrations_failing_pct", p, string.format("integrations: %d of %d fail (%s %%)", failing, total, p))
end

-- User reports since the release, as the on-call counts them (support tickets, chat): a number
-- the operator gives; -1 is "not counted".
function A.user_reports(m, n)
  if not n or n < 0 then return end
  put(m, "user_reports", n, "user reports: " .. n)
end

-- Resident memory of the processes whose command line matches, against a baseline in MiB.
function A.memory(m, argv_match, baseline_mb)
  if C.empty(argv_match) then return end
  local kb = 0
  for _, pr in ipairs(proc.find{ argv_match = argv_match }) do
    local ok, status = pcall(fs.read, "/proc/" .. pr.pid .. "/status")
    if ok and type(status) == "string" then kb = kb + (tonumber(status:match("VmRSS:%s*(%d+)")) or 0) end
  end
  local mb = r1(kb / 1024)
  put(m, "rss_mb", mb, "memory: " .. mb .. " MiB resident (" .. argv_match .. ")")
  if baseline_mb and baseline_mb > 0 then
    local up = r1(pct(mb - baseline_mb, baseline_mb))
    put(m, "memory_increase_pct", up, string.format("memory %s MiB against %s MiB: %s %% more", mb, baseline_mb, up))
  end
end

function A.postgres(m, dsn)
  if C.empty(dsn) then return end
  local ok = pg.ping{ dsn = dsn }
  put(m, "db_ok", ok and true or false, "PostgreSQL " .. (ok and "answers" or "does NOT answer"))
end

-- References whose parent row is gone (the seeds' check_data_orphans.py), counted in the
-- database: the measure of "data corruption" for PostgreSQL.
function A.relations(m, dsn, relations)
  if C.empty(dsn) or C.empty(relations) or m.values.db_ok == false then return end
  local total = 0
  for _, rel in ipairs(relations) do
    local n = C.orphans({ dsn = dsn }, rel)
    total = total + n
    log.info("  " .. rel .. ": " .. n .. " orphaned rows")
  end
  put(m, "orphaned_rows", total, "relations: " .. total .. " orphaned rows in " .. #relations .. " references")
end

function A.sqlite(m, db)
  if C.empty(db) or not fs.exists(db) then return end
  local ok = sqlite.integrity{ db = db }
  put(m, "db_intact", ok and true or false, "SQLite " .. db .. (ok and " passes" or " FAILS") .. " its integrity check")
end

-- Total waiting jobs from GET /api/queue/stats (Bull's shapes, as node-api-rollback reads them).
function A.queue_length(m, url, headers)
  if C.empty(url) then return end
  local r = http.get{ url = url, headers = headers, check = false, timeout = "10s" }
  if r.status ~= 200 then return end
  local counts = C.queue_counts(r.body)
  if not counts then return end
  local waiting = 0
  for _, c in pairs(counts) do waiting = waiting + c.waiting end
  put(m, "queue_waiting", waiting, "queues: " .. waiting .. " jobs waiting")
end

-- Applies `rules` in order: { level =, decision =, when = function(v) -> reason or nil }. The
-- first level with any reason wins (all its reasons are listed); `otherwise` when none holds.
-- A measure that was not taken is nil, and a rule must treat nil as "not known".
function A.decide(m, rules, otherwise)
  local v = m.values
  for _, level in ipairs(rules) do
    local reasons = {}
    for _, cond in ipairs(level.conditions) do
      local ok, why = pcall(cond, v)
      if ok and why then reasons[#reasons + 1] = why end
    end
    if #reasons > 0 then
      return report.trigger{ level = level.level, decision = level.decision, reasons = reasons, measures = v }
    end
  end
  return report.trigger{ level = otherwise.level, decision = otherwise.decision,
                         reasons = { otherwise.reason or "no trigger condition holds" }, measures = v }
end

-- Conditions: each returns a reason (with the number) or nil.
function A.above(name, limit, what)
  return function(v)
    local x = v[name]
    if type(x) == "number" and x > limit then return string.format("%s %s > %s", what, tostring(x), tostring(limit)) end
  end
end

function A.between(name, lo, hi, what)
  return function(v)
    local x = v[name]
    if type(x) == "number" and x > lo and x <= hi then
      return string.format("%s %s in (%s, %s]", what, tostring(x), tostring(lo), tostring(hi))
    end
  end
end

function A.is(name, value, what)
  return function(v) if v[name] == value then return what end end
end

return A
