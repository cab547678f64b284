-- Source: 002 "Rollback Plan" (Node/TypeScript API, pm2, Bull queues, Redis, PostgreSQL):
-- 1 Quick Reference, 3 Pre-Rollback Checklist and Information to Gather, 4.1 Application Code,
-- 4.2 Queue System, 4.3 Cache/Redis, 4.4 Frontend, 5.1 Schema Rollback (maintenance mode,
-- pg_dump, down migration, restore from backup), 5.2 Data Rollback, 5.3 Verification,
-- 6 Post-Rollback Verification, 9 Safety Checkpoints, 11.1 Emergency Rollback Script,
-- 11.2 Database Backup Script.
local C = require "lib.common"
local A = require "lib.assess"

runbook {
  name = "node-api-rollback",
  version = "1.0.0",
  summary = "Roll back the Node API: code, queue workers, Redis cache, frontend, or the PostgreSQL schema/data",
  params = C.with_notify{
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
    pm2_apps = { type = "list", default = "all", doc = "pm2 apps restarted by a code rollback (4.1 and 11.1: pm2 restart all; or name them: api,queue-worker)" },
    worker_app = { type = "string", default = "queue-worker", doc = "pm2 app of the queue workers" },
    drain_within = { type = "duration", default = "5m", doc = "mode=queue: how long the active jobs may take to finish (queues paused) before the workers stop; past it the rollback stops with the queues paused" },
    clean_failed = { type = "bool", default = false, doc = "mode=queue: POST /api/queue/clean-all before the rollback (the source's \"if needed\"): it destroys the failed jobs, the evidence of what went wrong, so it is off unless asked" },
    resume_watch = { type = "duration", default = "60s", doc = "mode=queue: how long each resumed queue is watched (failure rate, stuck jobs) before the next one resumes" },
    min_jobs_per_min = { type = "number", default = 0, doc = "mode=queue: the normal processing rate; a resumed queue with jobs waiting that finishes fewer per minute is paused again (checkpoint 3: processing time normal); 0: not checked" },
    max_failure_rate = { type = "number", default = 2, doc = "mode=queue: percent of failed jobs among those finished while a resumed queue is watched (checkpoint 3: < 2 %); above it the queue is paused again and the rest stay paused" },
    frontend_app = { type = "string", default = "frontend", doc = "pm2 app of the frontend" },
    smoke_script = { type = "string", default = "test:smoke", doc = "npm script of the smoke tests ('' to skip)" },
    build_script = { type = "string", default = "build" },
    redis_url = { type = "string", secret = true, default = "redis://127.0.0.1:6379/0", doc = "Redis (may hold a password)" },
    cache_pattern = { type = "string", default = "gemini:*", doc = "keys to invalidate (mode=cache); '' flushes the database" },
    warm = { type = "bool", default = true, doc = "POST /api/cache/warm after invalidating" },
    invalidate = { type = "list", default = "", doc = "mode=cache, gradual invalidation instead of a pattern or a flush: entities as kind:id (project:12,analysis:7), each DELETE /api/cache/<kind>/<id>, the API checked healthy between them" },
    redis_restart = { type = "bool", default = false, doc = "mode=cache: restart Redis after the flush (4.3 step 2, \"if needed\": high memory), then wait for PING" },
    redis_backend = { type = "string", default = "systemd", choices = { "systemd", "supervisor", "compose", "process", "pm2" }, doc = "how Redis runs (for redis_restart)" },
    redis_service = { type = "string", default = "redis", doc = "Redis's service name (unit, program or compose service)" },
    dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL DSN (schema, restore, backup, info)" },
    down_sql = { type = "path", doc = "the down migration to apply (mode=schema)" },
    dump = { type = "path", doc = "the dump to restore (mode=restore)" },
    tables = { type = "list", default = "", doc = "mode=restore: only these tables from a custom-format dump, the rest untouched (5.2 step 2, pg_restore -t)" },
    since = { type = "string", default = "", doc = "mode=data: list rows of the first verify table updated after this time ('2025-11-07 10:00:00')" },
    data_sql = { type = "path", doc = "mode=data: one correcting statement (UPDATE ... WHERE id IN (...)) applied after the dump" },
    monitor_for = { type = "duration", default = "0s", doc = "extended monitoring after the rollback (6.2), e.g. 30m: health, the API, new error lines, the queues, memory and disk" },
    monitor_every = { type = "duration", default = "10s", doc = "how often the extended monitoring samples" },
    max_new_errors = { type = "int", default = 0, doc = "new ERROR lines in app_log since the rollback began that still count as verified (6.1 check 4, checkpoint 2: no new errors)" },
    e2e_script = { type = "string", default = "", doc = "npm script of the critical end-to-end tests run after a code or frontend rollback (6.3, e.g. test:e2e:critical)" },
    cdn_purge_url = { type = "url", doc = "mode=frontend: POSTed after the deploy to clear the CDN cache (4.4 step 5; the CDN's purge API)" },
    cdn_token = { type = "string", secret = true, default = "", doc = "bearer token for cdn_purge_url" },
    static_root = { type = "path", doc = "mode=frontend: the web root the built static files are copied to (4.4 step 4: .next/static)" },
    migrations_table = { type = "string", default = "", doc = "mode=schema: the table holding the migration history (drizzle.__drizzle_migrations), listed before the down migration (5.1 method 1)" },
    backup_dir = { type = "path", doc = "where dumps go (default <repo>/backups/database)" },
    keep = { type = "int", default = 10, doc = "dumps kept by mode=backup" },
    verify_tables = { type = "list", default = "projects", doc = "tables whose row counts are checked" },
    relations = { type = "list", default = "", doc = "5.3 relationship checks after a database rollback: child.column->parent.column (scenes.project_id->projects.id); an orphaned row fails the check" },
    validate_script = { type = "string", default = "", doc = "npm script of the data validation queries run after a database rollback (5.3 step 4, e.g. db:validate)" },
    app_log = { type = "path", doc = "application log for error counts (e.g. /var/log/app.log)" },
    healthy_within = { type = "duration", default = "90s" },
    metrics = { type = "bool", default = true, doc = "check 6.4's metric targets after the rollback (and the extended monitoring): error rate < 1 %, P95 < 300 ms, queue length < 50, cache hit rate > 70 %, query time < 100 ms" },
    metrics_url = { type = "url", doc = "sampled for the error rate and P95 (default <base_url>/api/projects)" },
    metrics_samples = { type = "int", default = 50, doc = "requests sampled for the error rate and P95" },
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

-- The queues' counters from GET /api/queue/stats (C.queue_counts reads Bull's shapes); nil and
-- the reason when the API does not answer with them.
local function queue_stats(p)
  local r = http.get{ url = api(p, "/api/queue/stats"), headers = hdr(p), check = false, timeout = "10s" }
  if r.status ~= 200 then return nil, "GET /api/queue/stats: " .. tostring(r.status or r.error) end
  local counts = C.queue_counts(r.body)
  if not counts then return nil, "GET /api/queue/stats: not JSON" end
  return counts
end

local function stats_text(s)
  local parts = {}
  for name, c in pairs(s or {}) do
    parts[#parts + 1] = string.format("%s: %d waiting, %d active, %d completed, %d failed",
                                      name, c.waiting, c.active, c.completed, c.failed)
  end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, "; ") or "no queues"
end

local function pm2(name)
  -- "all" is pm2's every app; its service gets a name of its own so it cannot clash with an app.
  if name == "all" then
    service.define{ name = "pm2-all", backend = "pm2", app = "all" }
    return "pm2-all"
  end
  service.define{ name = name, backend = "pm2" }
  return name
end

local function error_count(p)
  if C.empty(p.app_log) or not fs.exists(p.app_log) then return nil end
  local _, n = C.grep_file(p.app_log, { "ERROR" }, 0)
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
  if p.mode == "schema" and not C.empty(p.migrations_table) then
    -- 5.1 method 1, "check the migration history": the newest entries, before the down migration.
    local schema, tbl = p.migrations_table:match("^([%a_][%w_]*)%.([%a_][%w_]*)$")
    local name = schema and (C.ident(schema) .. "." .. C.ident(tbl)) or C.ident(p.migrations_table)
    local rows = pg.query{ dsn = p.dsn, sql = "SELECT * FROM " .. name .. " ORDER BY 1 DESC LIMIT 5" }
    log.info("migration history (" .. p.migrations_table .. ", newest first):")
    for _, r in ipairs(rows) do log.info("  " .. json.encode(r)) end
  end
  local df = fs.disk_free(p.repo)
  log.info(string.format("disk %.0f%% used", df.used_percent))
  local mem = fs.read("/proc/meminfo")
  log.info("memory: " .. (mem:match("MemAvailable:%s*([^\n]+)") or "?") .. " available")
  log.info("severity " .. p.severity .. ": done within " .. DEADLINE[p.severity] .. " minutes")
  -- 7.1 "When Initiating Rollback" and 7.2's Slack/Teams message.
  if p.mode ~= "info" then
    C.notice(p, "start", { issue = p.issue ~= "" and p.issue or ("rollback of " .. p.mode), severity = p.severity,
                           impact = p.impact, eta = DEADLINE[p.severity] * 60,
                           status = "rolling back " .. p.mode .. (C.empty(p.stable_ref) and "" or (" to " .. p.stable_ref)) })
  end
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
    -- Keep the newest `keep` scheduled dumps (backup_<stamp>.dump, newest by modification
    -- time); older ones move to the run's artifacts, not `xargs rm -f`. The dumps taken before
    -- a rollback (backup_before_rollback_*) are not part of the rotation, and the dump this run
    -- just made is never removed, whatever the clocks or names say.
    local all = {}
    local new_name = tostring(d.path):match("[^/]*$")
    for _, f in ipairs(fs.glob(dir .. "/backup_*.dump")) do
      local name = f:match("[^/]*$")
      if f ~= d.path and name ~= new_name and not name:find("^backup_before_rollback_") then
        local st = fs.stat{ path = f }
        all[#all + 1] = { path = f, mtime = tonumber(st.mtime) or math.huge }
      end
    end
    table.sort(all, function(a, b)
      if a.mtime ~= b.mtime then return a.mtime > b.mtime end
      return a.path > b.path
    end)
    -- The new dump is one of the `keep`.
    for i = math.max(p.keep, 1), #all do
      log.info("retention: moving away " .. all[i].path)
      fs.remove(all[i].path)
    end
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
end)

-- 4.2 step 2, "drain active jobs (let them complete)": with the queues paused no job starts, so
-- the ones running finish before their workers stop (stopping first would kill them mid-job).
-- Polled, bounded by drain_within; past it the rollback stops here, the queues still paused.
step{ "Drain the active jobs", timeout = "1h", run = function(p)
  if p.mode ~= "queue" then return end
  if not state.paused then
    log.warn("the queues are not paused (queue_control=false or the API refused): active jobs are not drained")
  else
    local last
    wait["until"](function()
      local s, why = queue_stats(p)
      if not s then error(why, 0) end
      last = s
      local active = 0
      for _, c in pairs(s) do active = active + c.active end
      if active > 0 then log.info(active .. " active jobs still running") end
      return active == 0
    end, { timeout = p.drain_within, interval = "2s", what = "the active jobs to finish" })
    log.info("drained: " .. stats_text(last))
    state.drained = last
  end
  if p.clean_failed then
    post(p, "/api/queue/clean-all")
    state.done[#state.done + 1] = "failed jobs cleaned (clean_failed=true)"
  else
    log.info("failed jobs kept as evidence (clean_failed=true would clean them)")
  end
end }

step{ "Stop the queue workers", timeout = "5m", run = function(p)
  if p.mode == "queue" then service.stop(pm2(p.worker_app)) end
end }

step{ "Move the code to the stable version", timeout = "20m", run = function(p)
  if not needs_code(p) then return end
  git.fetch{ repo = p.repo, remote = "origin" }
  if p.mode == "code" then
    -- Refused over uncommitted changes unless stashed: nothing on the box is silently lost.
    git.checkout{ repo = p.repo, ref = p.stable_ref, stash = true }
    npm.ci{ dir = p.repo }
    npm.run{ dir = p.repo, script = p.build_script }
  elseif p.mode == "queue" then
    C.restore_paths(p.repo, p.stable_ref, p.queue_paths)
    npm.run{ dir = p.repo, script = p.build_script }
  else
    local dir = p.repo .. "/" .. p.frontend_dir
    C.restore_paths(p.repo, p.stable_ref, { p.frontend_dir })
    npm.ci{ dir = dir }
    npm.run{ dir = dir, script = p.build_script }
  end
  state.done[#state.done + 1] = p.mode .. " at " .. p.stable_ref
end }

step("Invalidate the cache", function(p)
  if p.mode ~= "cache" then return end
  if not redis.ping{ url = p.redis_url } then error("Redis does not answer PING", 0) end
  if not C.empty(p.invalidate) then
    -- Gradual: one entity at a time through the API, which knows its own keys; the API must stay
    -- healthy between them (the alternative in 4.3 to clearing everything at once).
    for _, e in ipairs(p.invalidate) do
      local kind, id = tostring(e):match("^([%w_%-]+):([%w_%-%.]+)$")
      if not kind then error("invalidate: '" .. tostring(e) .. "' is not kind:id (project:12)", 0) end
      http.delete{ url = api(p, "/api/cache/" .. kind .. "/" .. id), headers = hdr(p), timeout = "30s" }
      http.wait_healthy{ url = api(p, "/health"), timeout = "30s" }
      state.done[#state.done + 1] = "cache of " .. kind .. " " .. id .. " invalidated"
    end
  elseif C.empty(p.cache_pattern) then
    -- The nuclear option: the operator confirms (or runs with --yes); the count is in the preview.
    confirm("Flush every key of the cache database (" .. p.severity .. " rollback)?")
    redis.flush{ url = p.redis_url, confirm = true }
    state.done[#state.done + 1] = "Redis database flushed"
  else
    -- SCAN in batches, never `KEYS pattern | xargs DEL`, which blocks a production server.
    local r = redis.delete_matching{ url = p.redis_url, pattern = p.cache_pattern }
    state.done[#state.done + 1] = tostring(r.deleted) .. " keys matching " .. p.cache_pattern .. " deleted"
  end
  if p.redis_restart then
    service.define{ name = p.redis_service, backend = p.redis_backend }
    service.restart(p.redis_service)
    state.done[#state.done + 1] = "Redis restarted"
  end
  -- Polled: a restarted Redis answers after it has loaded its data, not at once.
  wait["until"](function() return redis.ping{ url = p.redis_url } end,
                { timeout = "60s", interval = "1s", what = "Redis to answer PING" })
  local info = redis.info{ url = p.redis_url }
  if type(info) == "table" and info.used_memory_human then log.info("Redis memory: " .. info.used_memory_human) end
  if p.warm then post(p, "/api/cache/warm"); state.done[#state.done + 1] = "cache warm-up requested" end
end)

step{ "Roll the schema or data back", timeout = "30m", run = function(p)
  if p.mode == "schema" then
    -- A file of statements written for this rollback; nothing is built from strings here.
    -- pg.script runs them all in one transaction (all or nothing); its dry-run runs them in a
    -- transaction that is rolled back, so a statement that would fail shows before the run.
    local r = pg.script{ dsn = p.dsn, file = p.down_sql }
    state.done[#state.done + 1] = "down migration " .. p.down_sql .. " applied (" .. tostring(r.statements) .. " statements)"
    log.info("statements: " .. tostring(r.statements))
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
    if C.empty(p.tables) then
      pg.restore{ dsn = p.dsn, file = p.dump, clean = true }
      state.done[#state.done + 1] = "database restored from " .. p.dump
    else
      pg.restore{ dsn = p.dsn, file = p.dump, clean = true, tables = p.tables }
      state.done[#state.done + 1] = "tables " .. table.concat(p.tables, ", ") .. " restored from " .. p.dump
    end
  end
end }

step{ "Restart the services", timeout = "5m", run = function(p)
  -- 7.1 "During Rollback": percent and ETA from the steps done and the time they took.
  if p.mode ~= "info" then
    C.notice(p, "progress", { issue = p.issue, severity = p.severity,
                              latest = #state.done > 0 and table.concat(state.done, "; ") or "nothing changed yet" })
  end
  if p.mode == "code" then
    for _, app in ipairs(p.pm2_apps) do service.restart(pm2(app)) end
  elseif p.mode == "queue" then
    service.start(pm2(p.worker_app))
  elseif p.mode == "frontend" then
    if not C.empty(p.static_root) then
      -- 4.4 step 4, "copy .next/static to the web root": fs.copy keeps what it replaces (the bad
      -- build's files) in the run's artifacts.
      fs.copy(p.repo .. "/" .. p.frontend_dir .. "/.next/static", p.static_root)
      state.done[#state.done + 1] = "static files deployed to " .. p.static_root
    end
    service.restart(pm2(p.frontend_app))
    if not C.empty(p.cdn_purge_url) then
      -- 4.4 step 5: the CDN would go on serving the bad build's files.
      http.post{ url = p.cdn_purge_url, json = { purge_everything = true }, timeout = "30s",
                 headers = not C.empty(p.cdn_token) and { Authorization = "Bearer " .. p.cdn_token } or nil }
      state.done[#state.done + 1] = "CDN cache purged"
    end
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
  if (p.mode == "code" or p.mode == "frontend") and not C.empty(p.e2e_script) then
    -- 6.3: the critical end-to-end flows; they write test data, so live only.
    npm.run{ dir = p.repo, script = p.e2e_script }
  end
  if not C.empty(p.dsn) then
    if not pg.ping{ dsn = p.dsn } then error("PostgreSQL does not answer", 0) end
    if writes_db(p) then
      -- 5.3: the schema (each verify table and its columns), the relationships, the counts.
      C.check_schema({ dsn = p.dsn }, p.verify_tables, p.relations)
      if not C.empty(p.validate_script) then npm.run{ dir = p.repo, script = p.validate_script } end
      local after = row_counts(p)
      for t, n in pairs(after) do
        log.info(string.format("%s: %s rows before, %s after", t, tostring((state.rows_before or {})[t]), tostring(n)))
      end
    end
  end
  if p.mode == "cache" and not redis.ping{ url = p.redis_url } then error("Redis does not answer", 0) end
  -- 6.1 check 4 and checkpoint 2, "no errors in logs": the ERROR lines written since the
  -- rollback began; more than max_new_errors and the rollback is not verified.
  local now_errors = error_count(p)
  if now_errors and state.errors_before then
    local new = now_errors - state.errors_before
    log.info("errors in the log since the rollback began: " .. new)
    if new > p.max_new_errors then
      error(new .. " new error lines in " .. p.app_log .. " since the rollback began (max_new_errors=" .. p.max_new_errors .. ")", 0)
    end
  end
  state.verified = true   -- health, endpoints and (where configured) smoke tests passed
end }

-- Only a verified rollback reopens the API: if the rollback failed (a down migration that did
-- not apply) or /health does not answer 200, maintenance mode stays on and the queues stay
-- paused, and the log says so; the operator decides what comes next.
step{ "Leave maintenance mode and resume the queues", always = true, run = function(p)
  if not state.maintenance and not state.paused then return end
  local healthy = false
  if state.verified then
    local h = http.get{ url = api(p, "/health"), headers = hdr(p), check = false, timeout = "10s" }
    healthy = h.status == 200
    if not healthy then log.error("/health answers " .. tostring(h.status or h.error) .. " now") end
  end
  if not healthy then
    local kept = {}
    if state.maintenance then kept[#kept + 1] = "maintenance mode stays ON" end
    if state.paused then kept[#kept + 1] = "the queues stay PAUSED" end
    log.error("the rollback is not verified (" ..
              (state.verified and "health check failed" or "an earlier step failed or health/smoke tests did not pass") ..
              "): " .. table.concat(kept, " and ") ..
              "; fix it, then POST /api/maintenance/disable and /api/queue/resume-all by hand")
    state.done[#state.done + 1] = table.concat(kept, ", ")
    return
  end
  if state.maintenance then post(p, "/api/maintenance/disable"); state.done[#state.done + 1] = "maintenance mode off" end
  if not state.paused then return end
  if p.mode == "queue" then
    -- Gradually (checkpoint 3): one queue at a time; each is watched for resume_watch before the
    -- next, and a failure rate above max_failure_rate or a queue whose jobs do not move pauses it
    -- again and leaves the rest paused.
    for i, q in ipairs(p.queues) do
      local before = (queue_stats(p) or {})[q]
      post(p, "/api/queue/" .. q .. "/resume")
      http.wait_healthy{ url = api(p, "/health"), timeout = "30s" }
      local t0 = time.now()
      local s
      wait["until"](function()
        s = (queue_stats(p) or {})[q]
        return time.now() - t0 >= C.seconds(p.resume_watch)
      end, { timeout = string.format("%ds", math.ceil(C.seconds(p.resume_watch)) + 30), interval = "2s",
             what = q .. " watched" })
      local problem
      if before and s then
        local done_n = (s.completed - before.completed) + (s.failed - before.failed)
        local failed_n = s.failed - before.failed
        local rate = done_n > 0 and 100 * failed_n / done_n or 0
        local per_min = done_n * 60 / math.max(1, C.seconds(p.resume_watch))
        log.info(string.format("%s: %d jobs finished in %s (%.1f per minute), %d failed (%.1f %%); %d waiting, %d active",
                               q, done_n, p.resume_watch, per_min, failed_n, rate, s.waiting, s.active))
        if rate > p.max_failure_rate then
          problem = string.format("failure rate %.1f %% (%d of %d) is above %s %%", rate, failed_n, done_n,
                                  tostring(p.max_failure_rate))
        elseif done_n == 0 and (s.waiting + s.active) > 0 then
          problem = string.format("no job finished in %s with %d waiting and %d active: stuck jobs?",
                                  p.resume_watch, s.waiting, s.active)
        elseif p.min_jobs_per_min > 0 and s.waiting > 0 and per_min < p.min_jobs_per_min then
          -- Checkpoint 3, "processing time normal": jobs waiting but finishing slower than usual.
          problem = string.format("processing is slow: %.1f jobs per minute with %d waiting (min_jobs_per_min=%s)",
                                  per_min, s.waiting, tostring(p.min_jobs_per_min))
        end
      else
        log.warn(q .. ": no stats for this queue from /api/queue/stats; resumed without a failure-rate check")
      end
      if problem then
        post(p, "/api/queue/" .. q .. "/pause")
        local rest = {}
        for j = i + 1, #p.queues do rest[#rest + 1] = p.queues[j] end
        state.done[#state.done + 1] = q .. " paused again (" .. problem .. ")"
        error("queue " .. q .. ": " .. problem .. "; paused it again" ..
              (#rest > 0 and ("; still paused: " .. table.concat(rest, ", ")) or ""), 0)
      end
      state.done[#state.done + 1] = "resumed " .. q
    end
  else
    post(p, "/api/queue/resume-all")
  end
  state.done[#state.done + 1] = "queues resumed"
end }

step{ "Extended monitoring", timeout = "4h", run = function(p)
  if p.mode == "info" or p.mode == "backup" then return end
  C.monitor{ urls = { api(p, "/health"), api(p, "/api/projects") }, headers = hdr(p),
             duration = p.monitor_for, interval = p.monitor_every, log_file = p.app_log, needles = { "ERROR" },
             queue_stats = p.queue_control and api(p, "/api/queue/stats") or nil,
             resources = true, disk_path = p.repo }
end }

-- 6.4 "Metrics Verification", measured instead of read off dashboards: a target missed fails the
-- run (the rollback is not verified), with the numbers.
step{ "Metric targets (checkpoint 4)", timeout = "10m", run = function(p)
  if not p.metrics or p.mode == "info" or p.mode == "backup" then return end
  local h = hdr(p)
  local m = A.new()
  A.sample(m, p.metrics_url or api(p, "/api/projects"), p.metrics_samples, h)
  if p.queue_control then A.queue_length(m, api(p, "/api/queue/stats"), h) end
  local missed = {}
  local v = m.values
  if v.error_rate and v.error_rate >= 1 then missed[#missed + 1] = "error rate " .. v.error_rate .. " % (target < 1 %)" end
  if v.p95_ms and v.p95_ms >= 300 then missed[#missed + 1] = "P95 " .. v.p95_ms .. " ms (target < 300 ms)" end
  if v.queue_waiting and v.queue_waiting >= 50 then missed[#missed + 1] = "queue length " .. v.queue_waiting .. " (target < 50)" end
  if p.mode == "cache" then
    local ok, info = pcall(redis.info, { url = p.redis_url })
    if ok and type(info) == "table" then
      local hits, misses = tonumber(info.keyspace_hits) or 0, tonumber(info.keyspace_misses) or 0
      if hits + misses > 0 then
        local rate = math.floor(1000 * hits / (hits + misses) + 0.5) / 10
        log.info("cache hit rate: " .. rate .. " % (" .. hits .. " hits, " .. misses .. " misses)")
        if rate <= 70 then missed[#missed + 1] = "cache hit rate " .. rate .. " % (target > 70 %)" end
      else
        log.info("cache hit rate: no lookups yet")
      end
    else
      missed[#missed + 1] = "Redis INFO unavailable"
    end
  end
  if not C.empty(p.dsn) then
    -- pg_stat_statements where the extension is there; otherwise one query timed here.
    local ok, rows = pcall(pg.query, { dsn = p.dsn, sql = "SELECT coalesce(max(mean_exec_time), 0)::float8 AS ms FROM pg_stat_statements" })
    local ms
    if ok and rows[1] then
      ms = tonumber(rows[1].ms)
    else
      local t0 = time.now()
      pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM " .. C.ident(p.verify_tables[1]) }
      ms = math.floor((time.now() - t0) * 1000 + 0.5)
    end
    if ms then
      log.info("database query time: " .. ms .. " ms")
      if ms >= 100 then missed[#missed + 1] = "query time " .. ms .. " ms (target < 100 ms)" end
    end
  end
  state.metrics = v
  if #missed > 0 then error("6.4 metric targets missed: " .. table.concat(missed, "; "), 0) end
  log.info("6.4 metric targets met")
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
  -- 7.1 "After Rollback" (or the failed end: what stopped it, and that queues stay paused).
  if p.mode ~= "info" then
    local m = state.metrics or {}
    C.notice(p, "finish", { outcome = run.failed and "failed" or "succeeded", issue = p.issue, impact = p.impact,
                            status = run.failed and ("step " .. run.failed.step .. " '" .. run.failed.step_name .. "': " .. tostring(run.failed.error)) or nil,
                            action = #state.done > 0 and table.concat(state.done, "; ") or "nothing changed",
                            error_rate = m.error_rate, response_ms = m.p95_ms,
                            monitor_for = p.monitor_for ~= "0s" and p.monitor_for or nil })
  end
end }
