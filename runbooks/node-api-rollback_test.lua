-- runbooks/node-api-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local REPO = "/srv/api"
local API = "http://127.0.0.1:3001"
local DSN = "postgresql://app:pw@127.0.0.1:5432/app"

local function pg_fake(a)
  if a.sql:find("information_schema.columns", 1, true) then
    return { { name = "id", type = "integer" }, { name = "name", type = "text" } }
  end
  if a.sql:find("count(*)", 1, true) then return { { n = 20 } } end
  return {}
end

local function fakes(over)
  local f = {
    ["http.sample"] = { n = 50, errors = 0, error_rate = 0, p50_ms = 12, p95_ms = 40, statuses = { ["200"] = 50 } },
    ["pg.query"] = pg_fake,
  }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

local function posted(r, path) return t.called(r, "http.post", { url = API .. path }) end

t.case("code: queues paused, stable checked out and built, pm2 restarted, verified, queues resumed", function()
  local r = t.run("node-api-rollback.lua", { params = { repo = REPO, stable_ref = "v2.3.0" }, fakes = fakes() })
  t.eq(r.outcome, "succeeded", r.error)
  local pause = posted(r, "/api/queue/pause-all")
  local checkout = t.called(r, "git.checkout", { repo = REPO, ref = "v2.3.0", stash = true })
  t.called(r, "npm.ci", { dir = REPO })
  t.called(r, "npm.run", { dir = REPO, script = "build" })
  t.called(r, "service.restart", { name = "pm2-all" })
  local healthy = t.called(r, "http.wait_healthy", { url = API .. "/health" })
  t.called(r, "npm.run", { script = "test:smoke" })
  local resume = posted(r, "/api/queue/resume-all")
  t.ok(pause.seq < checkout.seq, "paused before the code moves")
  t.ok(healthy.seq < resume.seq, "resumed only after the health check")
  t.not_called(r, "git.reset")
end)

t.case("an unhealthy API after the rollback keeps the queues paused", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, stable_ref = "v2.3.0" },
    fakes = fakes{ ["http.wait_healthy"] = t.fail(API .. "/health not healthy after 90s: 502") },
  })
  t.eq(r.outcome, "failed")
  posted(r, "/api/queue/pause-all")
  t.not_called(r, "http.post", { url = API .. "/api/queue/resume-all" })
  local said = false
  for _, l in ipairs(r.logs) do
    if l.level == "error" and l.message:find("the queues stay PAUSED", 1, true) then said = true end
  end
  t.ok(said, "the log says the queues stay paused")
end)

t.case("failing smoke tests keep the queues paused", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, stable_ref = "v2.3.0" },
    fakes = fakes{ ["npm.run"] = function(a)
      if a.script == "test:smoke" then return t.fail("'npm' exited 1: 2 smoke tests failed") end
      return { code = 0 }
    end },
  })
  t.eq(r.outcome, "failed")
  t.not_called(r, "http.post", { url = API .. "/api/queue/resume-all" })
end)

t.case("schema: dump and maintenance mode before the down migration, both lifted after verification", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "schema", dsn = DSN, down_sql = REPO .. "/migrations/down.sql" },
    fakes = fakes(),
  })
  t.eq(r.outcome, "succeeded", r.error)
  local dump = t.called(r, "pg.dump", { format = "custom" })
  local on = posted(r, "/api/maintenance/enable")
  local script = t.called(r, "pg.script", { file = REPO .. "/migrations/down.sql" })
  local off = posted(r, "/api/maintenance/disable")
  t.ok(dump.seq < script.seq and on.seq < script.seq, "dumped and in maintenance before the migration")
  t.ok(script.seq < off.seq)
  posted(r, "/api/queue/resume-all")
end)

t.case("a failed down migration keeps maintenance on and the queues paused", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "schema", dsn = DSN, down_sql = REPO .. "/migrations/down.sql" },
    fakes = fakes{ ["pg.script"] = t.fail("statement 2 of 3 failed: column \"x\" does not exist; the transaction was rolled back") },
  })
  t.eq(r.outcome, "failed")
  t.called(r, "pg.dump")
  t.not_called(r, "http.post", { url = API .. "/api/maintenance/disable" })
  t.not_called(r, "http.post", { url = API .. "/api/queue/resume-all" })
  t.not_called(r, "service.restart")
end)

t.case("no down migration without a dump", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "schema", dsn = DSN, down_sql = REPO .. "/migrations/down.sql" },
    fakes = fakes{ ["pg.dump"] = t.fail("pg_dump: connection refused") },
  })
  t.eq(r.outcome, "failed")
  t.not_called(r, "pg.script")
  t.not_called(r, "http.post", { url = API .. "/api/maintenance/enable" })
end)

t.case("cache: keys removed by pattern (SCAN), never a flush, the queues left running", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "cache" },
    fakes = fakes{ ["redis.delete_matching"] = { deleted = 12 }, ["redis.info"] = { keyspace_hits = 90, keyspace_misses = 10 } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "redis.delete_matching", { pattern = "gemini:*" })
  t.not_called(r, "redis.flush")
  t.not_called(r, "http.post", { url = API .. "/api/queue/pause-all" })
  posted(r, "/api/cache/warm")
end)

t.case("P3 is investigated, not rolled back", function()
  local r = t.run("node-api-rollback.lua", { params = { repo = REPO, stable_ref = "v2.3.0", severity = "P3" }, fakes = fakes() })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("P3: investigate and fix forward", 1, true), r.error)
  t.not_called(r, "http.post")
  t.not_called(r, "git.checkout")
end)

t.case("code: a crash at any change resumes to the same end", function()
  local f = fakes()
  f["time.now"] = function() return 1733300000 end
  local m = t.crash_matrix("node-api-rollback.lua", { params = { repo = REPO, stable_ref = "v2.3.0" }, fakes = f })
  t.eq(m.outcome, "succeeded")
end)

-- The queues' API: `resumed` says which queues run; a resumed ai-analysis fails half its jobs.
local function queue_api(failing)
  local resumed, polls = {}, 0
  local function stats()
    polls = polls + 1
    local function q(name)
      if not resumed[name] then return { waiting = 4, active = 0, completed = 100, failed = 1 } end
      local bad = failing == name and polls or 0
      return { waiting = 2, active = 1, completed = 100 + polls, failed = 1 + bad }
    end
    return json.encode{ ["ai-analysis"] = q("ai-analysis"), ["document-processing"] = q("document-processing") }
  end
  return {
    ["http.get"] = function(a)
      if a.url:find("/api/queue/stats", 1, true) then return { status = 200, body = stats() } end
      return { status = 200, body = "{}", json = {} }
    end,
    ["http.post"] = function(a)
      local name = a.url:match("/api/queue/([%w%-]+)/resume$")
      if name then resumed[name] = true end
      return { status = 200, body = "{}" }
    end,
  }
end

t.case("queue: workers stop only after the active jobs drained; queues resume one at a time", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "queue", stable_ref = "v2.3.0", resume_watch = "20s" },
    fakes = fakes(queue_api(nil)),
  })
  t.eq(r.outcome, "succeeded", r.error)
  local stop = t.called(r, "service.stop", { name = "queue-worker" })
  t.ok(posted(r, "/api/queue/pause-all").seq < stop.seq, "paused and drained before the workers stop")
  local a = posted(r, "/api/queue/ai-analysis/resume")
  local d = posted(r, "/api/queue/document-processing/resume")
  t.ok(a.seq < d.seq)
  t.not_called(r, "http.post", { url = API .. "/api/queue/resume-all" })
  t.not_called(r, "http.post", { url = API .. "/api/queue/clean-all" })   -- failed jobs are evidence
end)

t.case("queue: a resumed queue failing jobs is paused again and the rest stay paused", function()
  local r = t.run("node-api-rollback.lua", {
    params = { repo = REPO, mode = "queue", stable_ref = "v2.3.0", resume_watch = "20s" },
    fakes = fakes(queue_api("ai-analysis")),
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("queue ai-analysis: failure rate", 1, true), r.error)
  t.ok(r.error:find("still paused: document-processing", 1, true), r.error)
  posted(r, "/api/queue/ai-analysis/pause")
  t.not_called(r, "http.post", { url = API .. "/api/queue/document-processing/resume" })
end)
