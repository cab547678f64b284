-- Source: 003 "Emergency Rollback Plan" — 2 Database Rollback (Alembic Migration Rollback,
-- Database Backup Restoration), Database Rollback Procedures (1 Check Database State, 2 Staged
-- Database Rollback, 3 Data Migration Rollback), Data Integrity Verification.
local C = require "lib.common"

runbook {
  name = "alembic-rollback",
  version = "1.1.0",
  summary = "Alembic downgrade one migration at a time with a health check after each, or restore the database with the app stopped",
  params = {
    mode = { type = "string", default = "downgrade", choices = { "downgrade", "restore", "data" },
             doc = "downgrade: staged `alembic downgrade`; restore: put a database backup back (app stopped); data: run a data-migration rollback script (workers stopped)" },
    app_dir = { type = "path", default = ".", doc = "where alembic.ini is (alembic runs there)" },
    venv = { type = "path", doc = "virtualenv holding alembic: <venv>/bin/alembic (default: the alembic param, else alembic on PATH)" },
    alembic = { type = "list", default = "",
                doc = "argv that runs alembic when venv is not given (default alembic on PATH), e.g. /usr/bin/python3,-m,alembic" },
    steps = { type = "int", default = 1, doc = "migrations to go back, one at a time (downgrade)" },
    target = { type = "string", default = "",
               doc = "revision (or unique prefix) to go back to instead of a count, one migration at a time; -N is the same as steps=N; 'base' is refused" },
    db_kind = { type = "string", default = "sqlite", choices = { "sqlite", "postgres" } },
    sqlite_db = { type = "path", doc = "SQLite database (default <app_dir>/app.db)" },
    dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL DSN (db_kind=postgres), postgresql://user:password@host:port/db" },
    db_url = { type = "string", secret = true, default = "",
               doc = "SQLAlchemy URL alembic connects with (default: sqlite:///<sqlite_db>, or the dsn as postgresql://...)" },
    url_env = { type = "string", default = "DATABASE_URL",
                doc = "environment variable alembic gets db_url in (env.py reads it: never on the command line); empty: alembic.ini's sqlalchemy.url" },
    version_table = { type = "string", default = "alembic_version", doc = "alembic's version table, read directly after each step" },
    backup = { type = "path", doc = "the backup to restore (restore; default: newest backup_db_* beside the database, or a pg dump)" },
    data_script = { type = "list", default = "", doc = "argv of the data rollback (data), e.g. python,scripts/rollback_data_migration.py,--migration-id,42" },
    verify_script = { type = "list", default = "", doc = "argv of a read-only integrity check, e.g. python,scripts/verify_data_integrity.py" },
    max_query_ms = { type = "int", default = 5000, doc = "after the rollback a count of each count_tables table must take less (Monitoring: database performance); 0: not checked" },
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

local state = { done = {}, path = {} }

local function sqlite_db(p) return C.under(p.sqlite_db, p.app_dir, "app.db") end

-- The program: the venv's alembic when there is one, else the one on PATH (Debian's `alembic`).
local alembic_cmd
local function alembic_argv(p)
  if alembic_cmd then return alembic_cmd end
  if not C.empty(p.alembic) then
    alembic_cmd = { table.unpack(p.alembic) }
  elseif not C.empty(p.venv) then
    alembic_cmd = { p.venv .. "/bin/alembic" }
  else
    -- Not fs.exists(<app_dir>/venv/...): a probe recorded before the readonly `alembic current`
    -- makes the rehearsal treat that exec's answer as unknown.
    alembic_cmd = { "alembic" }
  end
  return alembic_cmd
end

-- The URL alembic connects with. It holds the password, so it goes to alembic in the
-- environment (url_env), never in argv; env.py reads it (os.environ["DATABASE_URL"]).
local function db_url(p)
  if not C.empty(p.db_url) then return p.db_url end
  if p.db_kind == "sqlite" then return "sqlite:///" .. sqlite_db(p) end
  if p.dsn:match("^postgres://") then return "postgresql://" .. p.dsn:sub(#"postgres://" + 1) end
  if p.dsn:match("^postgresql[%w+]*://") then return p.dsn end
  error("alembic needs a URL: dsn is not postgresql://...; pass db_url (a SQLAlchemy URL)", 0)
end

-- exec{} of `alembic <args...>` in app_dir, the database URL in the environment.
local function alembic(p, args, opts)
  local argv = { table.unpack(alembic_argv(p)) }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.cwd, argv.timeout = p.app_dir, opts.timeout or "60s"
  argv.readonly, argv.check = opts.readonly, opts.check
  if not C.empty(p.url_env) then argv.env = { [p.url_env] = db_url(p) } end
  return exec(argv)
end

-- A revision id as alembic prints it; anything else never reaches argv.
local function rev_ok(r) return type(r) == "string" and r:match("^[%w_][%w_]*$") ~= nil end

-- The database's own answer: the rows of the version table, read by the runbook (not by
-- alembic), so a downgrade is checked against the database this runbook backs up. "base" when
-- the table is missing or empty. In a rehearsal, after a planned downgrade, an unknown.
local function db_revision(p)
  local vt = C.ident(p.version_table):sub(2, -2)
  local rows
  if p.db_kind == "sqlite" then
    local t = sqlite.query{ db = sqlite_db(p), sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                            params = { vt } }
    if type(t) ~= "table" then return t end  -- an unknown
    if #t == 0 then return "base" end
    rows = sqlite.query{ db = sqlite_db(p), sql = "SELECT version_num FROM " .. C.ident(vt) }
  else
    local t = pg.query{ dsn = p.dsn, sql = "SELECT to_regclass($1) AS t", params = { vt } }
    if type(t) ~= "table" then return t end
    if not t[1] or t[1].t == nil then return "base" end
    rows = pg.query{ dsn = p.dsn, sql = "SELECT version_num FROM " .. C.ident(vt) }
  end
  if type(rows) ~= "table" then return rows end  -- an unknown (userdata)
  if #rows == 0 then return "base" end
  if #rows > 1 then
    local heads = {}
    for _, r in ipairs(rows) do heads[#heads + 1] = tostring(r.version_num) end
    error(p.version_table .. " holds several heads (" .. table.concat(heads, ", ") ..
          "): downgrade each branch by hand", 0)
  end
  return rows[1].version_num
end

-- `alembic current` prints "<rev> (head)" or "<rev>" on stdout (its INFO lines go to stderr).
local function alembic_current(p)
  local r = alembic(p, { "current" }, { readonly = true })
  if type(r.stdout) ~= "string" then return r.stdout end
  local rev
  for line in r.stdout:gmatch("[^\n]+") do
    rev = line:match("^([%w_]+)%s*$") or line:match("^([%w_]+) %(") or rev
  end
  return rev or "base"
end

-- `alembic history`: "<parent> -> <rev> (head), message", "<base> -> <rev>, message",
-- "<a>, <b> -> <rev> (mergepoint), message". -> { [rev] = { parents = {...}, message = "" } }
local function alembic_history(p)
  local h = alembic(p, { "history" }, { readonly = true })
  local graph = {}
  for line in (type(h.stdout) == "string" and h.stdout or ""):gmatch("[^\n]+") do
    log.debug(line)
    local parents, rev, rest = line:match("^(.-) %-> ([%w_]+)(.*)$")
    if rev then
      local list = {}
      for par in parents:gmatch("[^,%s]+") do if par ~= "<base>" then list[#list + 1] = par end end
      graph[rev] = { parents = list, message = rest:match("^[^,]*, (.*)$") or "" }
    end
  end
  return graph
end

-- The migrations a downgrade undoes, newest first: { { from =, to =, message = } }, following
-- each revision's one parent from `from` until `count` are taken or `target` is reached.
local function downgrade_path(p, graph, from)
  local count, target = p.steps, p.target
  if target:match("^%-%d+$") then count, target = tonumber(target:sub(2)), "" end
  if target == "" and count < 1 then error("steps must be at least 1", 0) end
  local path, rev = {}, from
  while true do
    if target ~= "" and rev:sub(1, #target) == target then break end
    if target == "" and #path == count then break end
    local node = graph[rev]
    if not node then
      if rev == "base" then
        error(target ~= "" and ("revision '" .. target .. "' is not below " .. from .. " (alembic history)")
              or ("only " .. #path .. " migration(s) below " .. from .. ", and going to base is refused"), 0)
      end
      error("revision " .. rev .. " is not in `alembic history`", 0)
    end
    if #node.parents > 1 then
      error("revision " .. rev .. " merges " .. table.concat(node.parents, ", ") ..
            ": a staged downgrade past a merge point is not supported; downgrade by hand", 0)
    end
    local to = node.parents[1] or "base"
    if to == "base" then
      error((target ~= "" and ("revision '" .. target .. "' is not below " .. from)
             or ("steps=" .. count .. " would reach base")) ..
            ": going to base drops every table; restore a backup instead (mode=restore)", 0)
    end
    path[#path + 1] = { from = rev, to = to, message = node.message }
    rev = to
  end
  return path
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
    -- "Check current migration" / "Show migration history", and the plan: which migrations
    -- this run undoes, one by one, before anything changes.
    state.rev_before = db_revision(p)
    local cur = alembic_current(p)
    log.info("alembic current: " .. tostring(cur) .. "; " .. p.version_table .. ": " .. tostring(state.rev_before))
    if cur ~= state.rev_before then
      error("alembic current says " .. tostring(cur) .. " but " .. p.version_table .. " in " ..
            (p.db_kind == "sqlite" and sqlite_db(p) or "the dsn's database") .. " holds " ..
            tostring(state.rev_before) .. ": alembic is looking at another database (env.py should read " ..
            (C.empty(p.url_env) and "the URL this runbook is given" or ("$" .. p.url_env)) .. ")", 0)
    end
    if state.rev_before == "base" then error("no migration is applied: nothing to downgrade", 0) end
    state.path = downgrade_path(p, alembic_history(p), state.rev_before)
    if #state.path == 0 then
      log.info("already at " .. state.rev_before .. ": nothing to downgrade")
      return
    end
    for i, m in ipairs(state.path) do
      if not rev_ok(m.from) or not rev_ok(m.to) then error("revision id '" .. m.from .. "' is not a plain id", 0) end
      log.info(string.format("plan %d/%d: alembic downgrade %s (undoes %s%s), then GET %s", i, #state.path,
                             m.to, m.from, m.message ~= "" and (": " .. m.message) or "", p.health_url))
    end
    -- The SQL the downgrades run, as alembic renders it offline (`--sql`: nothing connects).
    -- Not every migration renders offline (SQLite batch operations need the live table), so a
    -- failure here only warns.
    local range = state.path[1].from .. ":" .. state.path[#state.path].to
    local sql = alembic(p, { "downgrade", range, "--sql" }, { readonly = true, check = false })
    if sql.ok ~= false then
      local n = 0
      for line in (sql.stdout or ""):gmatch("[^\n]+") do
        n = n + 1
        if n <= 200 then log.info("sql: " .. line) end
      end
      if n > 200 then log.info("sql: ... " .. (n - 200) .. " more lines (alembic downgrade " .. range .. " --sql)") end
    else
      local last = ""
      for line in (sql.stderr or ""):gmatch("[^\n]+") do last = line end
      log.warn("alembic downgrade " .. range .. " --sql could not render the SQL: " .. last ..
               " (the live downgrade may fail the same way)")
    end
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
  -- One `alembic downgrade <revision>` per migration, to the explicit revision (not -1: a
  -- resumed or repeated step goes to the same place, never one further).
  for i, m in ipairs(state.path) do
    local what = string.format("downgrade %d/%d to %s (undoing %s%s)", i, #state.path, m.to, m.from,
                               m.message ~= "" and (": " .. m.message) or "")
    local r = alembic(p, { "downgrade", m.to }, { timeout = "15m", check = false })
    -- A planned exec predicts nothing about the version table, so a rehearsal reads the
    -- unchanged database here: it takes the revision the step would reach instead.
    local rev = run.dry_run and m.to or db_revision(p)
    state.at = rev
    if r.ok == false then
      local last = tostring(r.error or "")
      for line in (r.stderr or ""):gmatch("[^\n]+") do last = line end
      state.failed = what .. " failed: " .. last .. "; " .. p.version_table .. " holds " .. tostring(rev) ..
                     ", health not checked after it"
      error("alembic " .. state.failed .. " (the migrations below it were not touched; fix the migration or restore the backup " ..
            tostring(state.backup_taken) .. ")", 0)
    end
    if type(rev) == "string" and rev ~= m.to then
      state.failed = what .. ": alembic exited 0 but " .. p.version_table .. " holds " .. rev
      error(state.failed, 0)
    end
    -- "Test application after each rollback": stop at the first migration that leaves it unhealthy.
    local ok, err = pcall(http.wait_healthy, { url = p.health_url, timeout = p.healthy_within })
    if not ok then
      state.failed = "unhealthy after " .. what .. ": " .. tostring(type(err) == "table" and err.message or err)
      error("stopped: " .. state.failed .. "; " .. (#state.path - i) .. " more migration(s) not undone", 0)
    end
    state.done[#state.done + 1] = "downgraded to " .. m.to .. " (healthy)"
    log.info("at revision " .. m.to .. ", " .. p.health_url .. " healthy")
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
  local t0 = time.now()
  local after = counts(p)
  -- Monitoring 2, "database performance": the count queries timed (the tables' sizes decide).
  local ms = math.floor((time.now() - t0) * 1000 / math.max(1, #p.count_tables) + 0.5)
  log.info("database query time: " .. ms .. " ms per count (limit " .. p.max_query_ms .. " ms)")
  for _, t in ipairs(p.count_tables) do
    log.info(string.format("%s: %s rows before, %s after", t, tostring(state.before[t]), tostring(after[t])))
  end
  if p.max_query_ms > 0 and ms > p.max_query_ms then
    error("database performance: a count takes " .. ms .. " ms (max_query_ms=" .. p.max_query_ms .. ")", 0)
  end
  if not C.empty(p.verify_script) then
    local argv = { table.unpack(p.verify_script) }
    -- The operator's verification (a test suite) writes caches and test data: a change, run live only.
    argv.cwd, argv.timeout = p.app_dir, "15m"
    exec(argv)
  end
end }

step{ "Summary", always = true, run = function(p)
  C.print_block("database rollback (" .. p.mode .. ")", {
    "Duration: " .. C.minutes(time.now() - (state.started or time.now())),
    "Revision before: " .. tostring(state.rev_before or "-"),
    "Revision now: " .. tostring(state.at or state.rev_before or "-"),
    "Backup taken: " .. tostring(state.backup_taken or "none"),
    "Done: " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
    "Result: " .. (state.failed and ("FAILED: " .. state.failed)
                   or (p.mode == "downgrade" and #state.done > 0 and ("at " .. tostring(state.at or state.rev_before) .. ", healthy after each downgrade"))
                   or "-"),
  })
end }
