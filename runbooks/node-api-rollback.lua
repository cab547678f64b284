-- Source: 002 "Rollback Plan" (Node/TypeScript API, pm2, Bull queues, Redis, PostgreSQL):
-- 1 Quick Reference, 3 Pre-Rollback Checklist and Information to Gather, 4.1 Application Code,
-- 4.2 Queue System, 4.3 Cache/Redis, 4.4 Frontend, 5.1 Schema Rollback (maintenance mode,
-- pg_dump, down migration, restore from backup), 5.2 Data Rollback, 5.3 Verification,
-- 6 Post-Rollback Verification, 9 Safety Checkpoints, 11.1 Emergency Rollback Script,
-- 11.2 Database Backup Script.
local C = require "lib.common"

runbook {
  name = "node-api-rollback",
  version = "1.0.0",
  summary = "Roll back the Node API: code, queue workers, Redis cache, frontend, or the PostgreSQL schema/data",
  params = {
    mode = { type = "string", default = "code",
             choices = { "code", "queue", "cache", "frontend", "schema", "data", "restore", "backup", "info" },
             doc = "code: checkout stable + npm ci + build + pm2 restart (4.1, 11.1); queue: worker code only (4.2); cache: Redis flush or invalidate (4.3); frontend (4.4); schema: down-migration SQL (5.1 method 1); data: list the records changed since a time and apply a correcting statement (5.2); restore: database from a dump (5.1 method 2); backup: dump and keep the last N (11.2); info: gather only (3)" },
    severity = { type = "string", default = "P1", choices = { "P0", "P1", "P2", "P3" },
                 doc = "P0 <15 min, P1 <30 min, P2 <1 h; P3 is investigated, not rolled back" },
    repo = { type = "path", default = ".", doc = "the API's git checkout" },
    stable_ref = { type = "string", default = "", doc = "last stable commit or tag (required for code, queue, frontend)" },
    frontend_dir = { type = "string", default = "frontend", doc = "the frontend, relative to repo" },
    queue_paths = { type = "list", default = "backend/src/queues", doc = "the queue code, relative to repo" },
    base_url = { type = "url", default = "http://127.0.0.1:3001", doc = "the API" },
    token = { type = "string", secret = true, default = "", doc = "bearer token for the admin endpoints (optional)" },
    queue_control = { type = "bool", default = true, doc = "pause the queues (POST /api/queue/pause-all) around the rollback" },
    queues = { type = "list", default = "ai-analysis,document-processing", doc = "queues resumed one by one after a worker rollback" },
    pm2_apps = { type = "list", default = "api", doc = "pm2 apps restarted by a code rollback" },
    worker_app = { type = "string", default = "queue-worker", doc = "pm2 app of the queue workers" },
    frontend_app = { type = "string", default = "frontend", doc = "pm2 app of the frontend" },
    smoke_script = { type = "string", default = "test:smoke", doc = "npm script of the smoke tests ('' to skip)" },
    build_script = { type = "string", default = "build" },
    redis_url = { type = "string", secret = true, default = "redis://127.0.0.1:6379/0", doc = "Redis (may hold a password)" },
    cache_pattern = { type = "string", default = "gemini:*", doc = "keys to invalidate (mode=cache); '' flushes the database" },
    warm = { type = "bool", default = true, doc = "POST /api/cache/warm after invalidating" },
    dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL DSN (schema, restore, backup, info)" },
    down_sql = { type = "path", doc = "the down migration to apply (mode=schema)" },
    dump = { type = "path", doc = "the dump to restore (mode=restore)" },
    since = { type = "string", default = "", doc = "mode=data: list rows of the first verify table updated after this time ('2025-11-07 10:00:00')" },
    data_sql = { type = "path", doc = "mode=data: one correcting statement (UPDATE ... WHERE id IN (...)) applied after the dump" },
    monitor_for = { type = "duration", default = "0s", doc = "extended monitoring after the rollback (6.2), e.g. 30m" },
    backup_dir = { type = "path", doc = "where dumps go (default <repo>/backups/database)" },
    keep = { type = "int", default = 10, doc = "dumps kept by mode=backup" },
    verify_tables = { type = "list", default = "projects", doc = "tables whose row counts are checked" },
    app_log = { type = "path", doc = "application log for error counts (e.g. /var/log/app.log)" },
    healthy_within = { type = "duration", default = "90s" },
  },
}

local state = { done = {}, paused = false }
local DEADLINE = { P0 = 15, P1 = 30, P2 = 60, P3 = 240 }

local function api(p, path) return (p.base_url:gsub("/+$", "")) .. path end
local function hdr(p) return not C.empty(p.token) and { Authorization = "Bearer " .. p.token } or nil end
local function post(p, path) return http.post{ url = api(p, path), headers = hdr(p), timeout = "30s" } end
local function needs_code(p) return p.mode == "code" or p.mode == "queue" or p.mode == "frontend" end
local function needs_db(p) return p.mode == "schema" or p.mode == "data" or p.mode == "restore" or p.mode == "backup" end
local function writes_db(p) return p.mode == "schema" or p.mode == "data" or p.mode == "restore" end

local function pm2(name)
  service.define{ name = name, backend = "pm2" }
  return name
end

local function error_count(p)
  if C.empty(p.app_log) or not fs.exists(p.app_log) then return nil end
  local _, n = C.grep(fs.read(p.app_log), { "ERROR" })
  return n
end

local function row_counts(p)
  local counts = {}
  for _, t in ipairs(p.verify_tables) do
    local rows = pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM " .. C.ident(t) }
    counts[t] = rows[1] and rows[1].n
    log.info(t .. ": " .. tostring(counts[t]) .. " rows")
  end
  return counts
end

-- Checkpoint 1 and "Information to Gather": the state a post-mortem needs, before anything moves.
step("Checkpoint 1: gather information", function(p)
  state.started = time.now()
  if p.severity == "P3" and p.mode ~= "info" and p.mode ~= "backup" then
    error("P3: investigate and fix forward; rerun with a higher severity to roll back", 0)
  end
  if needs_code(p) and C.empty(p.stable_ref) then error("mode " .. p.mode .. " needs stable_ref", 0) end
  if needs_db(p) and C.empty(p.dsn) then error("mode " .. p.mode .. " needs dsn", 0) end
  if p.mode == "schema" and C.empty(p.down_sql) then error("mode schema needs down_sql", 0) end
  if p.mode == "data" and C.empty(p.data_sql) and p.since == "" then error("mode data needs since or data_sql", 0) end
  if p.mode == "restore" and C.empty(p.dump) then error("mode restore needs dump", 0) end
  local head = git.head{ repo = p.repo }
  state.head = head.commit
  log.info("deployed: " .. tostring(head.short or head.commit) .. " " .. tostring(head.ref or "(detached)"))
  for _, c in ipairs(git.log{ repo = p.repo, ref = "HEAD", max = 5 }) do
    log.info("  " .. tostring(c.commit):sub(1, 8) .. " " .. tostring(c.summary))
  end
  if not C.empty(p.stable_ref) then
    log.info("stable: " .. p.stable_ref .. " = " .. git.rev_parse{ repo = p.repo, ref = p.stable_ref })
  end
  state.errors_before = error_count(p)
  if state.errors_before then log.info("errors in the log: " .. state.errors_before) end
  local q = http.get{ url = api(p, "/api/queue/stats"), headers = hdr(p), check = false }
  log.info("queue stats: " .. (q.body or tostring(q.error)))
  if not C.empty(p.dsn) then state.rows_before = row_counts(p) end
  local df = fs.disk_free(p.repo)
  log.info(string.format("disk %.0f%% used", df.used_percent))
  local mem = fs.read("/proc/meminfo")
  log.info("memory: " .. (mem:match("MemAvailable:%s*([^\n]+)") or "?") .. " available")
  log.info("severity " .. p.severity .. ": done within " .. DEADLINE[p.severity] .. " minutes")
end)

step{ "Dump the database", timeout = "30m", run = function(p)
  if not needs_db(p) then return end
  local dir = C.under(p.backup_dir, p.repo, "backups/database")
  fs.mkdir(dir)
  -- pg.dump verifies the dump is readable and records size and SHA-256 (the source's
  -- `pg_dump | gzip` reported success even when pg_dump failed half-way).
  local prefix = p.mode == "backup" and "backup_" or "backup_before_rollback_"
  local d = pg.dump{ dsn = p.dsn, file = dir .. "/" .. prefix .. C.stamp():gsub("-", "_") .. ".dump", format = "custom" }
  state.dump = d.path
  log.info("dump " .. tostring(d.path) .. " " .. tostring(d.size) .. " bytes sha256 " .. tostring(d.sha256))
  if p.mode == "backup" then
    -- Keep the newest `keep` dumps; older ones move to the run's artifacts, not `xargs rm -f`.
    local all = fs.glob(dir .. "/backup_*.dump")
    table.sort(all, function(a, b) return a > b end)   -- timestamped names: newest first
    for i = p.keep + 1, #all do fs.remove(all[i]) end
    state.done[#state.done + 1] = "dump " .. tostring(d.path)
  end
end }

-- Pausing the queues and maintenance mode: new jobs and writes stop before code or data move.
step("Pause queues and writes", function(p)
  if p.mode == "info" or p.mode == "backup" then return end
  if writes_db(p) then
    post(p, "/api/maintenance/enable")
    state.maintenance = true
    state.done[#state.done + 1] = "maintenance mode on"
  end
  if p.queue_control and p.mode ~= "cache" then
    local r = http.post{ url = api(p, "/api/queue/pause-all"), headers = hdr(p), check = false }
    if r.ok == false then
      if writes_db(p) then error("could not pause the queues: " .. tostring(r.error), 0) end
      log.warn("could not pause queues: " .. tostring(r.error))
    else
      state.paused = true
      state.done[#state.done + 1] = "queues paused"
    end
  end
  if p.mode == "queue" then
    service.stop(pm2(p.worker_app))
    if p.queue_control then post(p, "/api/queue/clean-all") end
  end
end)

step{ "Move the code to the stable version", timeout = "20m", run = function(p)
  if not needs_code(p) then return end
  git.fetch{ repo = p.repo, remote = "origin" }
  if p.mode == "code" then
    -- Refused over uncommitted changes unless stashed: nothing on the box is silently lost.
    git.checkout{ repo = p.repo, ref = p.stable_ref, stash = true }
    npm.ci{ dir = p.repo }
    npm.run{ dir = p.repo, script = p.build_script }
  elseif p.mode == "queue" then
    git.checkout{ repo = p.repo, ref = p.stable_ref, paths = p.queue_paths }
    npm.run{ dir = p.repo, script = p.build_script }
  else
    local dir = p.repo .. "/" .. p.frontend_dir
    git.checkout{ repo = p.repo, ref = p.stable_ref, paths = { p.frontend_dir } }
    npm.ci{ dir = dir }
    npm.run{ dir = dir, script = p.build_script }
  end
  state.done[#state.done + 1] = p.mode .. " at " .. p.stable_ref
end }

step("Invalidate the cache", function(p)
  if p.mode ~= "cache" then return end
  if not redis.ping{ url = p.redis_url } then error("Redis does not answer PING", 0) end
  if C.empty(p.cache_pattern) then
    -- The nuclear option: the operator confirms (or runs with --yes); the count is in the preview.
    confirm("Flush every key of the cache database (" .. p.severity .. " rollback)?")
    redis.flush{ url = p.redis_url, confirm = true }
    state.done[#state.done + 1] = "Redis database flushed"
  else
    -- SCAN in batches, never `KEYS pattern | xargs DEL`, which blocks a production server.
    local r = redis.delete_matching{ url = p.redis_url, pattern = p.cache_pattern }
    state.done[#state.done + 1] = tostring(r.deleted) .. " keys matching " .. p.cache_pattern .. " deleted"
  end
  if not redis.ping{ url = p.redis_url } then error("Redis does not answer PING after the flush", 0) end
  local info = redis.info{ url = p.redis_url }
  if type(info) == "table" and info.used_memory_human then log.info("Redis memory: " .. info.used_memory_human) end
  if p.warm then post(p, "/api/cache/warm"); state.done[#state.done + 1] = "cache warm-up requested" end
end)

step{ "Roll the schema or data back", timeout = "30m", run = function(p)
  if p.mode == "schema" then
    -- A file of statements written for this rollback; nothing is built from strings here.
    local r = pg.exec{ dsn = p.dsn, sql = fs.read(p.down_sql) }
    state.done[#state.done + 1] = "down migration " .. p.down_sql .. " applied"
    log.info("affected: " .. tostring(r.affected))
  elseif p.mode == "data" then
    if p.since ~= "" then
      local t = C.ident(p.verify_tables[1])
      local rows = pg.query{ dsn = p.dsn, sql = "SELECT * FROM " .. t .. " WHERE updated_at > $1 LIMIT 100",
                             params = { p.since } }
      log.info(#rows .. " rows of " .. p.verify_tables[1] .. " changed since " .. p.since .. " (first 100)")
      for i = 1, math.min(#rows, 10) do log.info("  " .. json.encode(rows[i])) end
    end
    if not C.empty(p.data_sql) then
      -- pg.exec's dry-run counts the rows it would touch in a transaction that is rolled back.
      local r = pg.exec{ dsn = p.dsn, sql = fs.read(p.data_sql) }
      state.done[#state.done + 1] = tostring(r.affected) .. " rows corrected by " .. p.data_sql
    end
  elseif p.mode == "restore" then
    -- pg.restore dumps the current database first; with the dump above that makes two copies.
    pg.restore{ dsn = p.dsn, file = p.dump, clean = true }
    state.done[#state.done + 1] = "database restored from " .. p.dump
  end
end }

step{ "Restart the services", timeout = "5m", run = function(p)
  if p.mode == "code" then
    for _, app in ipairs(p.pm2_apps) do service.restart(pm2(app)) end
  elseif p.mode == "queue" then
    service.start(pm2(p.worker_app))
  elseif p.mode == "frontend" then
    service.restart(pm2(p.frontend_app))
  end
end }

-- Checkpoint 2: polls instead of `sleep 15`, then the smoke tests and the connections.
step{ "Checkpoint 2: health, smoke tests, connections", timeout = "15m", run = function(p)
  if p.mode == "info" or p.mode == "backup" then return end
  http.wait_healthy{ url = api(p, "/health"), timeout = p.healthy_within }
  local v = http.get{ url = api(p, "/api/version"), headers = hdr(p), check = false }
  log.info("running version: " .. (v.body or "?"))
  C.require_endpoints({ api(p, "/api/projects"), api(p, "/api/analysis") }, hdr(p))
  if (p.mode == "code" or p.mode == "frontend") and not C.empty(p.smoke_script) then
    npm.run{ dir = p.repo, script = p.smoke_script }
  end
  if not C.empty(p.dsn) then
    if not pg.ping{ dsn = p.dsn } then error("PostgreSQL does not answer", 0) end
    if writes_db(p) then
      local after = row_counts(p)
      for t, n in pairs(after) do
        log.info(string.format("%s: %s rows before, %s after", t, tostring((state.rows_before or {})[t]), tostring(n)))
      end
    end
  end
  if p.mode == "cache" and not redis.ping{ url = p.redis_url } then error("Redis does not answer", 0) end
end }

step{ "Leave maintenance mode and resume the queues", always = true, run = function(p)
  if state.maintenance then post(p, "/api/maintenance/disable"); state.done[#state.done + 1] = "maintenance mode off" end
  if not state.paused then return end
  if p.mode == "queue" then
    -- Gradually: one queue at a time, the API healthy before the next.
    for _, q in ipairs(p.queues) do
      post(p, "/api/queue/" .. q .. "/resume")
      http.wait_healthy{ url = api(p, "/health"), timeout = "30s" }
      local s = http.get{ url = api(p, "/api/queue/stats"), headers = hdr(p), check = false }
      log.info("resumed " .. q .. "; stats: " .. (s.body or "?"))
    end
  else
    post(p, "/api/queue/resume-all")
  end
  state.done[#state.done + 1] = "queues resumed"
end }

step{ "Extended monitoring", timeout = "4h", run = function(p)
  if p.mode == "info" or p.mode == "backup" then return end
  C.monitor{ urls = { api(p, "/health"), api(p, "/api/projects") }, headers = hdr(p),
             duration = p.monitor_for, interval = "10s", log_file = p.app_log, needles = { "ERROR" } }
end }

step{ "Checkpoint 3: error rate and summary", always = true, run = function(p)
  local after = error_count(p)
  if after and state.errors_before then
    log.info("errors in the log: " .. state.errors_before .. " before, " .. after .. " now")
  end
  local took = time.now() - (state.started or time.now())
  C.print_block("[UPDATE] rollback " .. p.mode .. " (" .. p.severity .. ")", {
    "From: " .. tostring(state.head),
    "To: " .. (C.empty(p.stable_ref) and "-" or p.stable_ref),
    "Duration: " .. C.minutes(took) .. " (deadline " .. DEADLINE[p.severity] .. " min)",
    "Done: " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
    "Next: checkpoint 4 in 30 minutes (error rate <1%, P95 <300ms, queue length <50), post-mortem within 24 h",
  })
end }
