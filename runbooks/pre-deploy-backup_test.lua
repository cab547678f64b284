-- runbooks/pre-deploy-backup.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local APP = "/srv/app"
local params = { app_dir = APP }

local function logged(r, text)
  for _, l in ipairs(r.logs) do
    if l.message:find(text, 1, true) then return l end
  end
  return nil
end

t.case("backs up requirements, config, app.py and the venv, and writes the manifest", function()
  local r = t.run("pre-deploy-backup.lua", { params = params })
  t.eq(r.outcome, "succeeded", r.error)
  local dir = t.called(r, "fs.mkdir").result
  t.ok(dir:find("^/srv/app/backups/pr%-30%-%d+%-%d+$"), dir)
  t.called(r, "fs.copy", { from = APP .. "/backend/requirements.txt", to = dir .. "/requirements.txt.backup" })
  t.called(r, "fs.copy", { from = APP .. "/backend/config", to = dir .. "/config-backup" })
  t.called(r, "fs.copy", { from = APP .. "/backend/app.py", to = dir .. "/app.py.backup" })
  t.called(r, "pip.freeze", { venv = APP .. "/backend/venv", to = dir .. "/pip-freeze-backup.txt" })
  local w = t.called(r, "fs.write", { path = dir .. "/rollback.json" })
  local manifest = json.decode(w.args.content)
  t.eq(manifest.rollback_packages, { jsonschema = "4.23.0", ["pydantic-core"] = "2.33.2" })
  t.ok(manifest.rollback.quick:find("dependency-rollback.lua -p level=L1", 1, true), manifest.rollback.quick)
  -- Health was checked before the deploy; no database given is said, not silently skipped.
  t.called(r, "http.get", { url = "http://127.0.0.1:5000/health" })
  t.ok(logged(r, "no database given to check"), "warns that no database was checked")
end)

t.case("a disk above the limit stops before anything is written", function()
  local r = t.run("pre-deploy-backup.lua", {
    params = params,
    fakes = { ["fs.disk_free"] = { total = 100, free = 5, avail = 5, used_percent = 95 } },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("disk 95% used (limit 90%)", 1, true), r.error)
  t.not_called(r, "fs.mkdir")
  t.not_called(r, "fs.copy")
end)

t.case("a missing source file stops before the backup directory is made", function()
  local r = t.run("pre-deploy-backup.lua", {
    params = params,
    fakes = { ["fs.exists"] = function(a) return not a.path:find("app.py", 1, true) end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("backend/ lacks app.py", 1, true), r.error)
  t.not_called(r, "fs.mkdir")
end)

t.case("a copy that differs from its source fails the verification", function()
  local r = t.run("pre-deploy-backup.lua", {
    params = params,
    fakes = { ["fs.sha256"] = function(a) return a.path:find("backup", 1, true) and ("1"):rep(64) or ("2"):rep(64) end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("requirements.txt.backup differs from requirements.txt", 1, true), r.error)
end)

t.case("an unhealthy app before the deploy fails unless told to go on", function()
  local down = { ["http.get"] = { status = 503, body = "", elapsed_ms = 3 } }
  local r = t.run("pre-deploy-backup.lua", { params = params, fakes = down })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("unhealthy before the deploy", 1, true), r.error)
  -- The backup was still taken first (it is what a rollback needs).
  t.called(r, "fs.write")
  local r2 = t.run("pre-deploy-backup.lua", { params = { app_dir = APP, require_healthy = false }, fakes = down })
  t.eq(r2.outcome, "succeeded", r2.error)
end)

t.case("a database that does not answer fails the check", function()
  local r = t.run("pre-deploy-backup.lua", {
    params = { app_dir = APP, pg_dsn = "postgresql://app:pw@127.0.0.1:5432/app" },
    fakes = { ["pg.ping"] = function() return false end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("PostgreSQL does not answer", 1, true), r.error)
end)

t.case("a crash at any change resumes to the same backup, nothing copied twice", function()
  local m = t.crash_matrix("pre-deploy-backup.lua", {
    params = params,
    fakes = { ["time.now"] = function() return 1733300000 end },   -- the directory's name holds the time
  })
  t.eq(m.outcome, "succeeded")
  t.ok(m.boundaries >= 6, "boundaries: " .. m.boundaries)
end)
