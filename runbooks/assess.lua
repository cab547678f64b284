-- Sources: the triggers and decision matrices of all the procedures — 000 "Rollback Triggers"
-- (RED / YELLOW / ORANGE alert), 001 "Rollback Decision Matrix" (rollback / disable the flag /
-- investigate), 002 "Rollback Decision Matrix" and its flowchart (P0–P3), 004 "Rollback Decision
-- Matrix" (critical / high / medium / low). Measures what the document names and prints the
-- level or decision with the numbers, changing nothing; `runbook report` shows it as the trigger.
-- Then run the rollback it names (the decision line says which runbook and level).
local C = require "lib.common"
local A = require "lib.assess"

runbook {
  name = "assess",
  version = "1.0.0",
  summary = "Assess before acting: measure the documents' triggers and print the alert level or decision, changing nothing",
  params = {
    procedure = { type = "string", required = true, choices = { "dependencies", "feature-flags", "node-api", "sprint" },
                  doc = "whose rule: dependencies (000 alert levels), feature-flags (001 matrix), node-api (002 matrix and flowchart), sprint (004 matrix)" },
    health = { type = "list", default = "", doc = "health URLs; none answering 200 means the application is down" },
    endpoints = { type = "list", default = "", doc = "critical or feature endpoints; the percentage failing (status >= 400 or no answer)" },
    auth_url = { type = "url", doc = "an endpoint that needs a working login (000 RED, 001 rollback when it fails)" },
    token = { type = "string", secret = true, default = "", doc = "bearer token for the endpoints (optional)" },
    sample_url = { type = "url", doc = "sampled for the error rate and latency percentiles" },
    samples = { type = "int", default = 20, doc = "requests to sample_url (1 to 1000)" },
    baseline_p95_ms = { type = "int", default = 0, doc = "normal P95 of sample_url, for the degradation percentage" },
    baseline_error_rate = { type = "number", default = 0, doc = "normal error rate in percent (000: RED/YELLOW on its increase)" },
    log_file = { type = "path", doc = "application log for error lines" },
    log_since = { type = "string", default = "", doc = "only log lines stamped within this (\"15m\"; the log's lines must start with an ISO time); default: the whole log" },
    log_patterns = { type = "list", default = "ERROR,Exception", doc = "what counts as an error line" },
    baseline_log_errors = { type = "int", default = -1, doc = "normal error lines over log_since (-1: unknown)" },
    test_cmd = { type = "list", default = "", doc = "the test suite, argv (runs live only: tests write caches); its failing percentage" },
    test_dir = { type = "path", doc = "where test_cmd and audit_cmd run (default: the current directory)" },
    audit_cmd = { type = "list", default = "", doc = "a dependency audit printing JSON, argv (\"npm,audit,--json\" or \"pip-audit,-f,json\"; live only): new vulnerabilities" },
    baseline_vulnerabilities = { type = "int", default = 0, doc = "vulnerabilities the audit reported before the release" },
    integrations = { type = "list", default = "", doc = "status endpoints of third-party integrations; the percentage failing" },
    user_reports = { type = "int", default = -1, doc = "user reports of problems since the release (-1: not counted)" },
    process_match = { type = "string", default = "", doc = "command-line pattern of the app's processes, for their memory" },
    baseline_rss_mb = { type = "number", default = 0, doc = "their normal resident memory in MiB" },
    pg_dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL to ping" },
    relations = { type = "list", default = "", doc = "child.column->parent.column references checked in pg_dsn's database (002 §5.3): orphaned rows are data corruption" },
    sqlite_db = { type = "path", doc = "SQLite database whose integrity is checked (001: data corruption)" },
    queue_stats = { type = "url", doc = "GET /api/queue/stats of the API (002: queue length < 50)" },
  },
}

local RULES = {
  -- 000 "Rollback Triggers".
  dependencies = {
    rules = {
      { level = "RED", decision = "immediate rollback: dependency-rollback level=L1 (L2 if L1 fails)", conditions = {
        A.is("down", true, "critical system failure: the application does not answer"),
        A.is("db_ok", false, "database connection lost"),
        A.above("endpoints_failing_pct", 5, "API endpoints failing (%)"),
        A.is("auth_ok", false, "authentication broken"),
        A.above("degradation_pct", 20, "performance degradation (%)"),
      } },
      { level = "YELLOW", decision = "cautionary rollback: dependency-rollback level=L1 after a look at the failures", conditions = {
        A.above("tests_failing_pct", 10, "tests failing (%)"),
        A.between("degradation_pct", 10, 20, "performance degradation (%)"),
        A.above("memory_increase_pct", 15, "memory increase (%)"),
        A.above("error_rate_increase", 2, "error rate increase (percentage points)"),
        A.above("vulnerabilities_new", 0, "security concerns: new vulnerabilities in the audit"),
      } },
      { level = "ORANGE", decision = "monitor closely; prepare the rollback", conditions = {
        A.between("degradation_pct", 5, 10, "gradual performance decline (%)"),
        A.is("log_errors_up", true, "more error lines in the log than usual"),
        A.above("user_reports", 1, "multiple user reports"),
        A.above("integrations_failing_pct", 0, "third-party integration problems: failing (%)"),
      } },
    },
    otherwise = { level = "GREEN", decision = "no rollback" },
  },
  -- 001 "Rollback Decision Matrix".
  ["feature-flags"] = {
    rules = {
      { level = "ROLLBACK", decision = "rollback now: feature-flag-rollback method=git (or database for data corruption)", conditions = {
        A.is("down", true, "the application does not answer"),
        A.is("auth_ok", false, "users cannot authenticate"),
        A.is("db_intact", false, "data corruption: the database fails its integrity check"),
        A.above("degradation_pct", 50, "performance degradation (%)"),
        A.above("vulnerabilities_new", 0, "security vulnerability introduced: new in the audit"),
      } },
      { level = "DISABLE FLAG", decision = "disable the feature flag: feature-flag-rollback method=flag", conditions = {
        A.above("endpoints_failing_pct", 0, "feature endpoints failing (%)"),
        A.between("degradation_pct", 0, 50, "performance impact (%)"),
        A.is("log_errors_up", true, "more error lines in the log than usual"),
        A.above("user_reports", 1, "several user reports (UI/UX issues, edge cases)"),
      } },
    },
    otherwise = { level = "INVESTIGATE", decision = "investigate; no rollback (feature-flag-rollback method=investigate gathers the state)" },
  },
  -- 002 "Rollback Decision Matrix" and "Decision Flowchart".
  ["node-api"] = {
    rules = {
      { level = "P0", decision = "rollback immediately (node-api-rollback, severity=P0; stop writes first if data is at risk)", conditions = {
        A.is("down", true, "API completely down"),
        A.is("db_ok", false, "database connection failed"),
        A.above("orphaned_rows", 0, "data corruption detected (stop all writes first): orphaned rows"),
      } },
      { level = "P1", decision = "rollback after a quick fix attempt (5 min): node-api-rollback severity=P1", conditions = {
        A.above("error_rate", 10, "error rate (%)"),
      } },
      { level = "P1?", decision = "maybe: investigate first", conditions = {
        A.between("error_rate", 5, 10, "error rate (%)"),
      } },
      { level = "P2", decision = "maybe: try optimisation first; a single broken feature goes behind its flag", conditions = {
        A.above("degradation_pct", 100, "response time over 2x the baseline (% slower)"),
        A.above("endpoints_failing_pct", 0, "a feature is broken: endpoints failing (%)"),
        A.above("queue_waiting", 50, "queue length over the target of 50"),
      } },
    },
    otherwise = { level = "P3", decision = "no rollback: monitor and fix forward" },
  },
  -- 004 "Rollback Decision Matrix".
  sprint = {
    rules = {
      { level = "CRITICAL", decision = "immediate full rollback: sprint-rollback level=L1 (< 5 min)", conditions = {
        A.is("down", true, "production down"),
        A.is("db_ok", false, "data at risk: the database does not answer"),
        A.is("db_intact", false, "data at risk: the database fails its integrity check"),
      } },
      { level = "HIGH", decision = "sprint rollback: sprint-rollback level=L2 (< 15 min)", conditions = {
        A.above("tests_failing_pct", 0, "tests failing (%)"),
        A.above("endpoints_failing_pct", 0, "major features broken: endpoints failing (%)"),
      } },
      { level = "MEDIUM", decision = "selective rollback: sprint-rollback level=L3 (< 30 min)", conditions = {
        A.above("degradation_pct", 10, "performance degradation (%)"),
        A.is("log_errors_up", true, "more error lines in the log than usual"),
        A.above("user_reports", 1, "users affected: several reports (minor bugs)"),
      } },
    },
    otherwise = { level = "LOW", decision = "fix forward" },
  },
}

step("Measure", function(p)
  local h = not C.empty(p.token) and { Authorization = "Bearer " .. p.token } or nil
  local m = A.new()
  A.health(m, p.health, h)
  A.endpoints(m, p.endpoints, h)
  if not C.empty(p.auth_url) then
    local r = http.get{ url = p.auth_url, headers = h, check = false, timeout = "10s" }
    m.values.auth_ok = r.status ~= nil and r.status < 400
    log.info("measured auth: " .. p.auth_url .. " → " .. tostring(r.status or r.error))
  end
  A.sample(m, p.sample_url, p.samples, h, p.baseline_p95_ms)
  if m.values.error_rate then m.values.error_rate_increase = A.round(m.values.error_rate - p.baseline_error_rate) end
  A.log_errors(m, p.log_file, p.log_patterns, p.log_since, p.baseline_log_errors >= 0 and p.baseline_log_errors or nil)
  A.tests(m, p.test_cmd, p.test_dir)
  A.audit(m, p.audit_cmd, p.test_dir, p.baseline_vulnerabilities)
  A.integrations(m, p.integrations, h)
  A.user_reports(m, p.user_reports)
  A.memory(m, p.process_match, p.baseline_rss_mb)
  A.postgres(m, p.pg_dsn)
  A.relations(m, p.pg_dsn, p.relations)
  A.sqlite(m, p.sqlite_db)
  A.queue_length(m, p.queue_stats, h)
  if next(m.values) == nil then error("nothing to measure: give health, endpoints, sample_url, log_file, test_cmd, ...", 0) end
  local rule = RULES[p.procedure]
  local t = A.decide(m, rule.rules, rule.otherwise)
  C.print_block("assessment (" .. p.procedure .. ")", {
    "Level: " .. t.level,
    "Decision: " .. tostring(t.decision),
    "Because: " .. table.concat(t.reasons, "; "),
  })
end)
