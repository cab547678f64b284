-- runbooks/alembic-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local APP = "/srv/api"
local HISTORY = table.concat({
  "def456 -> abc123 (head), add payments",
  "f00 -> def456, add bookings",
  "<base> -> f00, initial",
}, "\n") .. "\n"

-- A database at revision `rev` whose alembic moves it on `alembic downgrade X` (unless `fails`
-- names the revision whose downgrade exits 1).
local function world(rev, over)
  over = over or {}
  local w = { rev = rev, downgrades = {} }
  w.fakes = {
    ["sqlite.query"] = function(a)
      if a.sql:find("sqlite_master", 1, true) then return { { name = "alembic_version" } } end
      if a.sql:find("version_num", 1, true) then return { { version_num = w.rev } } end
      return { { n = 10 } }
    end,
    exec = function(a)
      local argv = a.argv
      if argv[2] == "current" then return { code = 0, ok = true, stdout = (over.current or w.rev) .. " (head)\n", stderr = "" } end
      if argv[2] == "history" then return { code = 0, ok = true, stdout = HISTORY, stderr = "" } end
      if argv[2] == "downgrade" and argv[4] == "--sql" then return { code = 0, ok = true, stdout = "DROP TABLE payments;\n", stderr = "" } end
      if argv[2] == "downgrade" then
        w.downgrades[#w.downgrades + 1] = argv[3]
        if over.fails == argv[3] then
          return { code = 1, ok = false, error = "'alembic' exited 1", stdout = "", stderr = "sqlite3.OperationalError: no such column" }
        end
        w.rev = argv[3]
        return { code = 0, ok = true, stdout = "", stderr = "" }
      end
      return { code = 0, ok = true, stdout = "", stderr = "" }
    end,
  }
  for k, v in pairs(over.fakes or {}) do w.fakes[k] = v end
  return w
end

local function downgrade_calls(r)
  local out = {}
  for _, e in ipairs(r.effects) do
    local argv = e.name == "exec" and e.args.argv
    if argv and argv[2] == "downgrade" and argv[4] ~= "--sql" then out[#out + 1] = e end
  end
  return out
end

t.case("one migration down: backup first, downgrade to the explicit revision, healthy", function()
  local w = world("abc123")
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP }, fakes = w.fakes })
  t.eq(r.outcome, "succeeded", r.error)
  t.eq(w.downgrades, { "def456" })
  local backup = t.called(r, "sqlite.backup", { db = APP .. "/app.db" })
  local down = downgrade_calls(r)
  t.eq(#down, 1)
  t.ok(backup.seq < down[1].seq, "the backup is taken before the downgrade")
  -- The database URL goes in the environment, never on the command line.
  t.eq(down[1].args.env, { DATABASE_URL = "sqlite:///" .. APP .. "/app.db" })
  t.called(r, "http.wait_healthy", { url = "http://127.0.0.1:8000/health" })
end)

t.case("unhealthy after a downgrade: the migrations below it are not touched", function()
  local w = world("abc123", { fakes = { ["http.wait_healthy"] = t.fail("not healthy after 90s: 500") } })
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP, steps = 2 }, fakes = w.fakes })
  t.eq(r.outcome, "failed")
  t.eq(w.downgrades, { "def456" })
  t.ok(r.error:find("stopped: unhealthy after downgrade 1/2 to def456", 1, true), r.error)
  t.ok(r.error:find("1 more migration(s) not undone", 1, true), r.error)
end)

t.case("a failed migration stops the rollback and names the backup", function()
  local w = world("abc123", { fails = "def456" })
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP, steps = 2 }, fakes = w.fakes })
  t.eq(r.outcome, "failed")
  t.eq(w.downgrades, { "def456" })
  t.ok(r.error:find("no such column", 1, true), r.error)
  t.ok(r.error:find("restore the backup " .. APP .. "/emergency_backup_", 1, true), r.error)
  t.not_called(r, "http.wait_healthy")
end)

t.case("no downgrade without a backup", function()
  local w = world("abc123", { fakes = { ["sqlite.backup"] = t.fail("disk full") } })
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP }, fakes = w.fakes })
  t.eq(r.outcome, "failed")
  t.eq(#downgrade_calls(r), 0)
  t.eq(w.downgrades, {})
end)

t.case("target=base is refused before anything is touched", function()
  local w = world("abc123")
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP, target = "base" }, fakes = w.fakes })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("drops every table", 1, true), r.error)
  t.not_called(r, "sqlite.backup")
  t.not_called(r, "exec")
end)

t.case("alembic looking at another database is refused", function()
  local w = world("abc123", { current = "def456" })
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP }, fakes = w.fakes })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("alembic is looking at another database", 1, true), r.error)
  t.not_called(r, "sqlite.backup")
end)

t.case("restore: the app is stopped around the restore, the current file kept by sqlite.restore", function()
  local w = world("abc123", { fakes = { ["fs.latest"] = function() return APP .. "/backup_db_20250101.db" end } })
  local r = t.run("alembic-rollback.lua", { params = { app_dir = APP, mode = "restore" }, fakes = w.fakes })
  t.eq(r.outcome, "succeeded", r.error)
  local stop = t.called(r, "service.stop", { name = "backend-v2" })
  local restore = t.called(r, "sqlite.restore", { db = APP .. "/app.db", from = APP .. "/backup_db_20250101.db" })
  local start = t.called(r, "service.start", { name = "backend-v2" })
  t.ok(stop.seq < restore.seq and restore.seq < start.seq, "stop, restore, start")
  t.ok(t.called(r, "sqlite.backup").seq < restore.seq, "an emergency backup before the restore")
  t.eq(w.downgrades, {})
end)
