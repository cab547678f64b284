-- Source: 003 "Emergency Rollback Plan" — 2 Database Rollback (Alembic Migration Rollback,
-- Database Backup Restoration), Database Rollback Procedures (1 Check Database State, 2 Staged
-- Database Rollback, 3 Data Migration Rollback), Data Integrity Verification.
local C = require "lib.common"

runbook {
  name = "alembic-rollback",
  version = "1.0.0",
  summary = "Alembic downgrade one migration at a time with a health check after each, or restore the database with the app stopped",
  params = {
    mode = { type = "string", default = "downgrade", choices = { "downgrade", "restore", "data" },
             doc = "downgrade: staged `alembic downgrade`; restore: put a database backup back (app stopped); data: run a data-migration rollback script (workers stopped)" },
    app_dir = { type = "path", default = ".", doc = "where alembic.ini is" },
    venv = { type = "path", doc = "virtualenv holding alembic (default <app_dir>/venv)" },
    steps = { type = "int", default = 1, doc = "migrations to go back, one at a time (downgrade)" },
    target = { type = "string", default = "", doc = "revision to go back to instead of a count (downgrade); 'base' is refused" },
    db_kind = { type = "string", default = "sqlite", choices = { "sqlite", "postgres" } },
    sqlite_db = { type = "path", doc = "SQLite database (default <app_dir>/app.db)" },
    dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL DSN (db_kind=postgres)" },
    backup = { type = "path", doc = "the backup to restore (restore; default: newest backup_db_* beside the database, or a pg dump)" },
    data_script = { type = "list", default = "", doc = "argv of the data rollback (data), e.g. python,scripts/rollback_data_migration.py,--migration-id,42" },
    verify_script = { type = "list", default = "", doc = "argv of a read-only integrity check, e.g. python,scripts/verify_data_integrity.py" },
    count_tables = { type = "list", default = "users,appointments,payments", doc = "tables whose row counts are compared before and after" },
    service_name = { type = "string", default = "backend-v2" },
    worker_service = { type = "string", default = "celery-worker", doc = "stopped during a data rollback" },
    backend = { type = "string", default = "compose", choices = { "systemd", "supervisor", "pm2", "compose" },
                doc = "the services' manager (their names are the manager's names)" },
    compose_file = { type = "path", doc = "docker-compose.yml (default <app_dir>/docker-compose.yml)" },
    health_url = { type = "url", default = "http://127.0.0.1:8000/health" },
    healthy_within = { type = "duration", default = "90s" },
  },
}

local state = { done = {} }

local function alembic(p) return C.under(p.venv, p.app_dir, "venv") .. "/bin/alembic" end
local function sqlite_db(p) return C.under(p.sqlite_db, p.app_dir, "app.db") end

-- `alembic current` prints "<rev> (head)" or "<rev>"; its INFO lines go to stderr.
local function current_revision(p)
  local r = exec{ alembic(p), "current", cwd = p.app_dir, readonly = true, timeout = "60s" }
  local rev
  for line in (r.stdout or ""):gmatch("[^\n]+") do rev = line:match("^(%w+)") or rev end
  return rev or "(none)"
end

local function counts(p)
  local out = {}
  for _, t in ipairs(p.count_tables) do
    local sql = "SELECT count(*) AS n FROM " .. C.ident(t)
    local ok, rows = pcall(function()
      if p.db_kind == "sqlite" then return sqlite.query{ db = sqlite_db(p), sql = sql } end
      return pg.query{ dsn = p.dsn, sql = sql }
    end)
    out[t] = ok and rows[1] and rows[1].n or "?"
  end
  return out
end

local function svc(p, name)
  local def = { name = name, backend = p.backend }
  if p.backend == "compose" then
    def.config, def.cwd = C.under(p.compose_file, p.app_dir, "docker-compose.yml"), p.app_dir
  end
  service.define(def)
  return name
end

step("Check the database state", function(p)
  state.started = time.now()
  if p.target == "base" then
    error("target 'base' drops every table; restore a backup instead (mode=restore)", 0)
  end
  if p.db_kind == "postgres" and C.empty(p.dsn) then error("db_kind=postgres needs dsn", 0) end
  if p.mode == "data" and C.empty(p.data_script) then error("mode data needs data_script", 0) end
  if p.db_kind == "sqlite" then
    if not sqlite.integrity{ db = sqlite_db(p) } then log.warn(sqlite_db(p) .. " fails its integrity check") end
  elseif not pg.ping{ dsn = p.dsn } then
    error("PostgreSQL does not answer", 0)
  end
  state.before = counts(p)
  for _, t in ipairs(p.count_tables) do log.info(t .. ": " .. tostring(state.before[t]) .. " rows") end
  if p.mode == "downgrade" then
    state.rev_before = current_revision(p)
    log.info("alembic current: " .. tostring(state.rev_before))
    local h = exec{ alembic(p), "history", cwd = p.app_dir, readonly = true, timeout = "60s" }
    for line in (h.stdout or ""):gmatch("[^\n]+") do log.debug(line) end
  end
end)

-- "Step 1: Backup current state" — before any migration or restore touches the data.
step{ "Back up the database", timeout = "30m", run = function(p)
  local name = "emergency_backup_" .. C.stamp():gsub("-", "_")
  if p.db_kind == "sqlite" then
    local db = sqlite_db(p)
    state.backup_taken = (db:match("^(.*)/[^/]+$") or ".") .. "/" .. name .. ".db"
    sqlite.backup{ db = db, to = state.backup_taken }
  else
    state.backup_taken = p.app_dir .. "/" .. name .. ".dump"
    pg.dump{ dsn = p.dsn, file = state.backup_taken, format = "custom" }
  end
  state.done[#state.done + 1] = "backup " .. state.backup_taken
end }

step{ "Downgrade, checking health after each migration", timeout = "60m", run = function(p)
  if p.mode ~= "downgrade" then return end
  local function one(arg)
    exec{ alembic(p), "downgrade", arg, cwd = p.app_dir, timeout = "15m" }
    local rev = current_revision(p)
    state.done[#state.done + 1] = "downgraded to " .. tostring(rev)
    -- "Test application after each rollback": stop at the first migration that leaves it unhealthy.
    http.wait_healthy{ url = p.health_url, timeout = p.healthy_within }
    log.info("healthy at revision " .. tostring(rev))
  end
  if p.target ~= "" then
    one(p.target)
  else
    if p.steps < 1 then error("steps must be at least 1", 0) end
    for _ = 1, p.steps do one("-1") end
  end
end }

step{ "Stop the application", timeout = "2m", run = function(p)
  if p.mode == "restore" then service.stop(svc(p, p.service_name)) end
  if p.mode == "data" then service.stop(svc(p, p.worker_service)) end
end }

step{ "Restore or roll the data back", timeout = "60m", run = function(p)
  if p.mode == "restore" then
    local from = p.backup
    if p.db_kind == "sqlite" then
      local db = sqlite_db(p)
      if C.empty(from) then from = fs.latest(db:match("^(.*)/[^/]+$") or ".", "backup_db_*.db") end
      if not from then error("no backup_db_*.db beside " .. db .. "; pass backup=", 0) end
      -- Not `cp backup app.db` over a file the app may still hold open: the online backup API,
      -- and the current file kept first.
      sqlite.restore{ db = db, from = from }
    else
      if C.empty(from) then error("postgres restore needs backup= (a pg_dump file)", 0) end
      pg.restore{ dsn = p.dsn, file = from, clean = true }
    end
    state.done[#state.done + 1] = "restored from " .. from
  elseif p.mode == "data" then
    local argv = { table.unpack(p.data_script) }
    argv.cwd, argv.timeout = p.app_dir, "60m"
    exec(argv)
    state.done[#state.done + 1] = "data rollback: " .. table.concat(p.data_script, " ")
  end
end }

step{ "Start the application", timeout = "5m", run = function(p)
  if p.mode == "restore" then service.start(svc(p, p.service_name)) end
  if p.mode == "data" then service.start(svc(p, p.worker_service)) end
end }

step{ "Verify data integrity and health", timeout = "15m", run = function(p)
  http.wait_healthy{ url = p.health_url, timeout = p.healthy_within }
  if p.db_kind == "sqlite" and not sqlite.integrity{ db = sqlite_db(p) } then
    error(sqlite_db(p) .. " fails its integrity check", 0)
  end
  local after = counts(p)
  for _, t in ipairs(p.count_tables) do
    log.info(string.format("%s: %s rows before, %s after", t, tostring(state.before[t]), tostring(after[t])))
  end
  if not C.empty(p.verify_script) then
    local argv = { table.unpack(p.verify_script) }
    argv.cwd, argv.readonly, argv.timeout = p.app_dir, true, "15m"
    exec(argv)
  end
end }

step{ "Summary", always = true, run = function(p)
  C.print_block("database rollback (" .. p.mode .. ")", {
    "Duration: " .. C.minutes(time.now() - (state.started or time.now())),
    "Revision before: " .. tostring(state.rev_before or "-"),
    "Backup taken: " .. tostring(state.backup_taken or "none"),
    "Done: " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
  })
end }
