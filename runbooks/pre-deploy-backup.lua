-- Source: 000 "PR #30 Rollback Procedures" — Pre-Deployment Backup Strategy (1. Environment
-- Backup, 2. Database State Verification, 3. Application Health Check).
local C = require "lib.common"

runbook {
  name = "pre-deploy-backup",
  version = "1.0.0",
  summary = "Timestamped backup of requirements, pip freeze, config and app.py; database and health checks",
  params = {
    app_dir = { type = "path", default = ".", doc = "project root holding backend/" },
    venv = { type = "path", doc = "the backend's virtualenv (default <app_dir>/backend/venv)" },
    backups = { type = "path", doc = "where backups go (default <app_dir>/backups)" },
    label = { type = "string", default = "pr-30", doc = "backup directory prefix: <label>-YYYYmmdd-HHMMSS" },
    rollback_packages = { type = "list", default = "jsonschema==4.23.0,pydantic-core==2.33.2",
                          doc = "versions a rollback of this deploy pins back to (written to the manifest)" },
    pg_dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL that must answer before the deploy (optional)" },
    sqlite_db = { type = "path", doc = "a SQLite database that must pass its integrity check (optional)" },
    db_check = { type = "list", default = "", doc = "a read-only connectivity check run in backend/, argv (e.g. venv/bin/python,-c,import services.mongodb_service)" },
    health = { type = "list", default = "http://127.0.0.1:5000/health,http://127.0.0.1:3000/api/health",
               doc = "health URLs that must answer before deploying" },
    require_healthy = { type = "bool", default = true, doc = "stop when a health check fails (the source only printed it)" },
    max_disk_percent = { type = "int", default = 90, doc = "refuse to back up onto a disk fuller than this" },
  },
}

local state = {}

step("Check the sources and the disk", function(p)
  local backend_dir = p.app_dir .. "/backend"
  state.backend_dir = backend_dir
  state.venv = C.under(p.venv, backend_dir, "venv")
  state.root = C.under(p.backups, p.app_dir, "backups")
  local missing = {}
  for _, rel in ipairs{ "requirements.txt", "config", "app.py" } do
    if not fs.exists(backend_dir .. "/" .. rel) then missing[#missing + 1] = rel end
  end
  if #missing > 0 then error("backend/ lacks " .. table.concat(missing, ", ") .. ": nothing to back up", 0) end
  local df = fs.disk_free(p.app_dir)
  log.info(string.format("disk %.0f%% used", df.used_percent))
  if df.used_percent > p.max_disk_percent then
    error(string.format("disk %.0f%% used (limit %d%%): a backup could fill it", df.used_percent, p.max_disk_percent), 0)
  end
end)

step("Create the backup directory", function(p)
  state.dir = fs.mkdir(state.root .. "/" .. p.label .. "-" .. C.stamp())
  log.info("backup directory: " .. state.dir)
end)

step("Copy requirements, config and app.py", function(p)
  local b = state.backend_dir
  fs.copy(b .. "/requirements.txt", state.dir .. "/requirements.txt.backup")
  fs.copy(b .. "/config", state.dir .. "/config-backup")
  fs.copy(b .. "/app.py", state.dir .. "/app.py.backup")
end)

-- The source ran `pip freeze` with whatever pip was on PATH; this freezes the backend's venv.
step("Freeze the virtualenv", function(p)
  if not fs.exists(state.venv .. "/bin/python") then
    return log.warn("no virtualenv at " .. state.venv .. ": no freeze taken")
  end
  local snap = pip.freeze{ venv = state.venv, to = state.dir .. "/pip-freeze-backup.txt" }
  log.info("pip freeze of " .. state.venv .. " -> " .. tostring(snap.path))
end)

-- Instead of a generated rollback.sh (an unreviewed shell script with global pip), the backup
-- holds a manifest and the exact runbook command that undoes the deploy.
step("Write the rollback manifest", function(p)
  local pins = C.parse_pins(p.rollback_packages)
  local manifest = {
    created = C.iso(), label = p.label, app_dir = p.app_dir, venv = state.venv,
    rollback_packages = pins,
    files = { "requirements.txt.backup", "config-backup", "app.py.backup", "pip-freeze-backup.txt" },
    rollback = {
      quick = "runbook exec runbooks/dependency-rollback.lua -p level=L1 -p app_dir=" .. p.app_dir,
      full = "runbook exec runbooks/dependency-rollback.lua -p level=L2 -p app_dir=" .. p.app_dir ..
             " -p backups=" .. state.root .. " -p backup_pattern=" .. p.label .. "-*",
    },
  }
  fs.write(state.dir .. "/rollback.json", json.encode(manifest, true) .. "\n")
  log.info("rollback: " .. manifest.rollback.quick)
end)

step("Verify the backup", function(p)
  for _, pair in ipairs{ { "requirements.txt", "requirements.txt.backup" }, { "app.py", "app.py.backup" } } do
    local a = fs.sha256(state.backend_dir .. "/" .. pair[1])
    local b = fs.sha256(state.dir .. "/" .. pair[2])
    if a ~= b then error(pair[2] .. " differs from " .. pair[1], 0) end
  end
  log.info("backup verified: " .. state.dir)
end)

step("Check database connectivity", function(p)
  local checked = 0
  if not C.empty(p.pg_dsn) then
    if not pg.ping{ dsn = p.pg_dsn } then error("PostgreSQL does not answer", 0) end
    log.info("PostgreSQL connection verified"); checked = checked + 1
  end
  if not C.empty(p.sqlite_db) then
    if not sqlite.integrity{ db = p.sqlite_db } then error(p.sqlite_db .. " fails its integrity check", 0) end
    log.info("SQLite integrity verified"); checked = checked + 1
  end
  if not C.empty(p.db_check) then
    local argv = { table.unpack(p.db_check) }
    argv.cwd, argv.readonly, argv.timeout = state.backend_dir, true, "60s"
    exec(argv)
    log.info("connectivity check passed"); checked = checked + 1
  end
  if checked == 0 then log.warn("no database given to check (pg_dsn, sqlite_db or db_check)") end
end)

step("Pre-deployment health check", function(p)
  local failed = C.check_endpoints(p.health)
  if #failed > 0 and p.require_healthy then
    error("unhealthy before the deploy: " .. table.concat(failed, ", "), 0)
  end
  log.info("backup at " .. tostring(state.dir))
end)
