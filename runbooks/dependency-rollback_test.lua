-- runbooks/dependency-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local APP = "/srv/app"
local VENV = APP .. "/backend/venv"
local BAD = { jsonschema = "4.25.0", ["pydantic-core"] = "2.37.2" }
local GOOD = { jsonschema = "4.23.0", ["pydantic-core"] = "2.33.2" }

-- pip answers the bad versions until the pin, the good ones after it.
local function fakes(over)
  local pinned = false
  local f = {
    ["pip.versions"] = function() return pinned and GOOD or BAD end,
    ["pip.pin"] = function(a) pinned = true; return { packages = a.packages } end,
    ["pip.restore"] = function() return { count = 40 } end,
    ["pip.check"] = { ok = true, problems = {} },
  }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

local function seq(r, name, args) return t.called(r, name, args).seq end

t.case("L1: stop, freeze, pin the last good versions, verify, restart, check health", function()
  local r = t.run("dependency-rollback.lua", { params = { app_dir = APP }, fakes = fakes() })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "pip.pin", { venv = VENV, packages = GOOD })
  -- The services it stops are the ones it declared, never a pkill pattern.
  t.called(r, "service.stop", { name = "frontend" })
  t.called(r, "service.stop", { name = "backend" })
  t.not_called(r, "exec")
  t.called(r, "pip.freeze", { venv = VENV })
  t.ok(seq(r, "service.stop", { name = "backend" }) < seq(r, "pip.pin"), "stopped before the pin")
  t.ok(seq(r, "pip.freeze") < seq(r, "pip.pin"), "frozen before the pin")
  t.ok(seq(r, "pip.pin") < seq(r, "service.start", { name = "backend" }), "pinned before the start")
  t.called(r, "http.wait_healthy", { url = "http://127.0.0.1:5000/health" })
  t.called(r, "http.get", { url = "http://127.0.0.1:5000/api/calculations/test" })
  -- L1 restores no files and builds no venv.
  t.not_called(r, "fs.restore")
  t.not_called(r, "pip.venv")
end)

t.case("versions still wrong after the pin: the services are not restarted on them", function()
  local r = t.run("dependency-rollback.lua", {
    params = { app_dir = APP },
    fakes = fakes{ ["pip.versions"] = BAD },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("jsonschema is 4.25.0, expected 4.23.0", 1, true), r.error)
  t.not_called(r, "service.start")
end)

t.case("pip check problems fail the rollback before the restart", function()
  local r = t.run("dependency-rollback.lua", {
    params = { app_dir = APP },
    fakes = fakes{ ["pip.check"] = t.fail("fastapi 0.110 has requirement pydantic-core>=2.35, but you have pydantic-core 2.33.2") },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("pydantic-core>=2.35", 1, true), r.error)
  t.not_called(r, "service.start")
end)

t.case("L2 without a backup stops before anything is stopped", function()
  local r = t.run("dependency-rollback.lua", {
    params = { app_dir = APP, level = "L2" },
    fakes = fakes{ ["fs.latest"] = function() return nil end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("no backup matching pr-30-* in /srv/app/backups", 1, true), r.error)
  t.not_called(r, "service.stop")
  t.not_called(r, "pip.pin")
end)

t.case("L2 restores the files and the frozen packages from the newest backup", function()
  local B = APP .. "/backups/pr-30-20250101-101010"
  local r = t.run("dependency-rollback.lua", {
    params = { app_dir = APP, level = "L2" },
    fakes = fakes{ ["fs.latest"] = function() return B end },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "fs.restore", { backup = B .. "/requirements.txt.backup", path = APP .. "/backend/requirements.txt" })
  t.called(r, "fs.restore", { backup = B .. "/config-backup", path = APP .. "/backend/config" })
  t.called(r, "pip.restore", { venv = VENV, snapshot = B .. "/pip-freeze-backup.txt" })
  t.called(r, "pip.pin", { packages = GOOD })
end)

t.case("L3 builds a fresh venv (the old one kept) and reinstalls the frontend from its lockfile", function()
  local r = t.run("dependency-rollback.lua", { params = { app_dir = APP, level = "L3" }, fakes = fakes() })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "pip.venv", { path = VENV, clear = true })
  t.called(r, "npm.ci", { dir = APP .. "/frontend" })
  t.called(r, "pip.install", { venv = VENV, requirements = APP .. "/backend/requirements.txt" })
end)

t.case("a service that never gets healthy fails the run", function()
  local r = t.run("dependency-rollback.lua", {
    params = { app_dir = APP },
    fakes = fakes{ ["http.wait_healthy"] = t.fail("http://127.0.0.1:5000/health not healthy after 120s: 500") },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("not healthy", 1, true), r.error)
end)

t.case("L1: a crash at any change resumes without pinning or restarting twice", function()
  local m = t.crash_matrix("dependency-rollback.lua", {
    params = { app_dir = APP },
    fakes = { ["pip.versions"] = GOOD, ["time.now"] = function() return 1733300000 end },
  })
  t.eq(m.outcome, "succeeded")
end)
