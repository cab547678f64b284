-- runbooks/feature-flag-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local APP = "/srv/ops"
local API = "http://127.0.0.1:8500"
local PHASE1 = { "new_secret_key_handling", "xss_protection_enabled", "csrf_tokens_enabled", "secure_credential_storage" }

-- The ops tool: every flag reads back disabled once toggled; `enabled` says what it reads before.
local function api(enabled_before)
  local toggled = {}
  return {
    ["http.post"] = function(a)
      if a.json and a.json.flag_name then toggled[a.json.flag_name] = true end
      return { status = 200, body = "{}", json = {} }
    end,
    ["http.get"] = function(a)
      local flag = a.url:match("/api/feature%-flags/([%w_]+)$")
      if flag and flag ~= "health" then
        return { status = 200, body = "", elapsed_ms = 4,
                 json = { flag_name = flag, enabled = not toggled[flag] and enabled_before or false } }
      end
      return { status = 200, body = "{}", json = {}, elapsed_ms = 4 }
    end,
  }
end

local function merged(a, b)
  local f = {}
  for k, v in pairs(a) do f[k] = v end
  for k, v in pairs(b or {}) do f[k] = v end
  return f
end

local function rollback_log(r)
  return t.called(r, "fs.write", { path = APP .. "/logs/rollbacks.log" }).args.content
end

t.case("phase 1: every flag is toggled off and reads back disabled; nothing else moves", function()
  local r = t.run("feature-flag-rollback.lua", { params = { app_dir = APP, phase = "1" }, fakes = api(true) })
  t.eq(r.outcome, "succeeded", r.error)
  for _, flag in ipairs(PHASE1) do
    t.called(r, "http.post", { url = API .. "/api/feature-flags/toggle", json = { flag_name = flag, enabled = false } })
  end
  t.not_called(r, "service.stop")
  t.not_called(r, "service.restart")
  t.not_called(r, "git.checkout")
  t.not_called(r, "sqlite.restore")
  local entry = rollback_log(r)
  t.ok(entry:find("Method: feature_flag", 1, true), entry)
  t.ok(entry:find("Verification: success", 1, true), entry)
end)

t.case("a flag that does not read back disabled fails the rollback and the log says so", function()
  local f = api(true)
  f["http.get"] = function(a)
    return { status = 200, body = "", elapsed_ms = 4, json = { enabled = a.url:find("xss_protection", 1, true) ~= nil } }
  end
  local r = t.run("feature-flag-rollback.lua", { params = { app_dir = APP, flags = { "xss_protection_enabled" } }, fakes = f })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("xss_protection_enabled to read back disabled", 1, true), r.error)
  local entry = rollback_log(r)
  t.ok(entry:find("Verification: failed", 1, true), entry)
end)

t.case("method=flag without flags is refused before any change", function()
  local r = t.run("feature-flag-rollback.lua", { params = { app_dir = APP }, fakes = api(true) })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("method=flag needs a phase or flags", 1, true), r.error)
  t.not_called(r, "http.post")
end)

t.case("git: tag and database backup before the app stops and the code moves", function()
  local r = t.run("feature-flag-rollback.lua", { params = { app_dir = APP, method = "git" }, fakes = api(false) })
  t.eq(r.outcome, "succeeded", r.error)
  local tag = t.called(r, "git.tag", { repo = APP, ref = "HEAD" })
  local backup = t.called(r, "sqlite.backup", { db = APP .. "/data/pcm_ops_tools.db" })
  local stop = t.called(r, "service.stop", { name = "pcm-ops-tools" })
  local checkout = t.called(r, "git.checkout", { repo = APP, ref = "main" })
  t.ok(tag.seq < checkout.seq and backup.seq < checkout.seq and stop.seq < checkout.seq, "backups, stop, then checkout")
  t.called(r, "service.start", { name = "pcm-ops-tools" })
  t.not_called(r, "git.reset")
end)

t.case("database: no backup and no reinit stops with the broken database kept", function()
  local r = t.run("feature-flag-rollback.lua", {
    params = { app_dir = APP, method = "database" },
    fakes = merged(api(false), { ["fs.glob"] = {} }),
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("no backup to restore and no reinit command given", 1, true), r.error)
  t.called(r, "sqlite.backup")          -- the current database was copied first
  t.not_called(r, "fs.remove")
  t.not_called(r, "sqlite.restore")
end)

t.case("files: failing tests leave the partial rollback uncommitted", function()
  local r = t.run("feature-flag-rollback.lua", {
    params = { app_dir = APP, method = "files", files = { "backend/auth.py" }, commit = true,
               test_cmd = { "pytest", "-q" } },
    fakes = merged(api(false), { exec = { code = 1, ok = false, stdout = "1 failed", stderr = "" } }),
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("tests failed after restoring the files", 1, true), r.error)
  t.called(r, "git.checkout", { paths = { "backend/auth.py" } })
  t.not_called(r, "git.commit")
end)

t.case("investigate changes nothing", function()
  local r = t.run("feature-flag-rollback.lua", { params = { app_dir = APP, method = "investigate" }, fakes = api(true) })
  t.eq(r.outcome, "succeeded", r.error)
  t.not_called(r, "http.post")
  t.not_called(r, "service.stop")
  t.not_called(r, "service.restart")
  t.not_called(r, "git.checkout")
  t.ok(rollback_log(r):find("ROLLBACK INVESTIGATED", 1, true))
end)
