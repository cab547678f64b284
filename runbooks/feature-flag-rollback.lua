-- Source: 001 "Rollback Procedures — Emergency Recovery and Feature Rollback Guide": Quick
-- Reference (emergency endpoint, env rollback mode, git), Rollback Decision Matrix, Phase-Specific
-- Rollback Procedures (phases 1-3), Git-Based Rollback (complete, partial files, database),
-- Monitoring During Rollback, Rollback Testing, Rollback Log Entry Template, the quick-rollback
-- script, Recovery Best Practices (tag current state, back up the database) and Success Criteria.
local C = require "lib.common"

-- The flags each phase introduced, as the source lists them.
local PHASES = {
  ["1"] = { "new_secret_key_handling", "xss_protection_enabled", "csrf_tokens_enabled", "secure_credential_storage" },
  ["2"] = { "thread_safe_sessions", "atomic_session_updates", "enhanced_error_handling", "pydantic_v2_schemas" },
  ["3"] = { "postgresql_support" },
}
-- Flags whose rollback needs a restart ("May require application restart for schema changes").
local NEEDS_RESTART = { pydantic_v2_schemas = true }

runbook {
  name = "feature-flag-rollback",
  version = "1.0.0",
  summary = "Roll a feature back: disable flags, emergency endpoint, env rollback mode, git, files or database",
  params = C.with_notify{
    method = { type = "string", default = "flag",
               choices = { "investigate", "flag", "emergency", "env", "git", "files", "database" },
               doc = "decision matrix: investigate (single reports: gather state, change nothing); flag (feature misbehaves, limited impact); emergency (the app's emergency-rollback endpoint); env (rollback mode env var + restart); git / files / database (app won't start, auth broken, data corruption)" },
    phase = { type = "string", default = "", choices = { "", "1", "2", "3", "all" },
              doc = "disable every flag a phase introduced (with method=flag)" },
    flags = { type = "list", default = "", doc = "flags to disable (with method=flag), added to the phase's" },
    reason = { type = "string", default = "unspecified", doc = "the trigger, for the rollback log" },
    feature = { type = "string", default = "", doc = "feature name for the rollback log (default: the flags)" },
    base_url = { type = "url", default = "http://127.0.0.1:8500", doc = "the ops tool" },
    token = { type = "string", secret = true, default = "", doc = "bearer token for the flag API (optional)" },
    app_dir = { type = "path", default = ".", doc = "the application checkout (git repository)" },
    good_ref = { type = "string", default = "main", doc = "last known good commit, tag or branch (git / files)" },
    files = { type = "list", default = "", doc = "files to restore from good_ref (method=files; default: every file that differs)" },
    commit = { type = "bool", default = false, doc = "commit the partial rollback (method=files)" },
    test_cmd = { type = "list", default = "", doc = "argv of the tests run before the partial rollback is committed (method=files, the source's \"test and commit\"); failing tests leave it uncommitted, e.g. poetry,run,pytest,-q" },
    env_file = { type = "path", doc = "env file the app reads (method=env; default <app_dir>/.env)" },
    db = { type = "path", doc = "SQLite database (default <app_dir>/data/pcm_ops_tools.db)" },
    restore_from = { type = "path", doc = "SQLite backup to restore (method=database; default: the newest pcm_ops_tools_backup_*.db)" },
    reinit = { type = "list", default = "", doc = "argv that rebuilds an empty database when there is no backup (method=database), e.g. poetry,run,python,backend/db/init_db.py" },
    service_name = { type = "string", default = "pcm-ops-tools", doc = "the application service" },
    backend = { type = "string", default = "process", choices = { "process", "systemd", "supervisor", "pm2", "compose" } },
    start_cmd = { type = "list", default = "poetry,run,uvicorn,backend.main:app,--port,8500",
                  doc = "argv of the app (process backend; replaces ./start.sh)" },
    log_file = { type = "path", doc = "application log (default <app_dir>/logs/pcm_ops_tools.log)" },
    rollback_log = { type = "path", doc = "where the rollback log entry is appended (default <app_dir>/logs/rollbacks.log)" },
    healthy_within = { type = "duration", default = "90s" },
    auth_url = { type = "url", doc = "an endpoint that needs a working login (with token), checked after the rollback (success criteria: critical user flows)" },
    max_response_ms = { type = "int", default = 2000, doc = "after the rollback /api/health must answer within this (success criteria: performance back to acceptable levels)" },
    max_new_errors = { type = "int", default = 0, doc = "error lines written to the log during the rollback that still count as success (success criteria: no new errors in logs)" },
  },
}

local state = { flags = {}, done = {}, verification = "failed" }

local function api(p, path) return (p.base_url:gsub("/+$", "")) .. path end
local function headers(p)
  if C.empty(p.token) then return nil end
  return { Authorization = "Bearer " .. p.token }
end
local function db_path(p) return C.under(p.db, p.app_dir, "data/pcm_ops_tools.db") end

local function app_service(p)
  if state.service then return state.service end
  local spec = { argv = p.start_cmd, cwd = p.app_dir, health = api(p, "/api/health"),
                 log = C.under(p.log_file, p.app_dir, "logs/pcm_ops_tools.log"),
                 -- Started by hand (./start.sh) it has no pidfile: adopted by the port it serves on.
                 port = C.url_port(p.base_url) }
  if p.method == "env" then spec.env = { FEATURE_FLAG_ROLLBACK_MODE_ENABLED = "true" } end
  state.service = C.service(p.backend, p.service_name, spec)
  return state.service
end

local function flag_disabled(p, flag)
  local r = http.get{ url = api(p, "/api/feature-flags/" .. flag), headers = headers(p), check = false }
  return type(r.json) == "table" and r.json.enabled == false
end

step("Decide and document the current state", function(p)
  state.started = time.now()
  local _, before = C.grep_file(C.under(p.log_file, p.app_dir, "logs/pcm_ops_tools.log"), { "error", "exception", "failed" }, 0)
  state.errors_before = before
  if p.method == "flag" then
    local seen = {}
    local function add(f) if not seen[f] then seen[f] = true; state.flags[#state.flags + 1] = f end end
    if p.phase == "all" then
      for _, ph in ipairs{ "1", "2", "3" } do for _, f in ipairs(PHASES[ph]) do add(f) end end
    elseif p.phase ~= "" then
      for _, f in ipairs(PHASES[p.phase]) do add(f) end
    end
    for _, f in ipairs(p.flags) do
      if not f:match("^[%w_%-%.]+$") then error("flag '" .. f .. "' is not a flag name", 0) end
      add(f)
    end
    if #state.flags == 0 then error("method=flag needs a phase or flags", 0) end
    log.info("flags to disable: " .. table.concat(state.flags, ", "))
  end
  -- The source's "Pre-Rollback Testing": what the flags and the critical paths say now.
  local flags = http.get{ url = api(p, "/api/feature-flags"), headers = headers(p), check = false }
  log.info("feature flags now: " .. (flags.body or tostring(flags.error)))
  C.check_endpoints({ api(p, "/api/health"), api(p, "/aws/tools") }, headers(p))
  if p.method ~= "investigate" then C.notice(p, "start", { issue = p.issue ~= "" and p.issue or p.reason, impact = p.impact, status = "method " .. p.method }) end
end)

-- "Tag current state" and "Backup database" from the best practices, before anything changes.
step("Back up before changing anything", function(p)
  if p.method == "investigate" or p.method == "flag" or p.method == "emergency" or p.method == "env" then
    return log.info("method " .. p.method .. " changes neither code nor data")
  end
  if p.method == "git" or p.method == "files" then
    git.tag{ repo = p.app_dir, name = "working-state-" .. C.stamp(), ref = "HEAD",
             message = "before rollback: " .. p.reason }
  end
  local db = db_path(p)
  if p.method ~= "files" and fs.exists(db) then
    -- The online backup API, not `cp` of a file the running app may be writing.
    state.db_backup = p.app_dir .. "/data/pcm_ops_tools_backup_" .. C.stamp():gsub("-", "_") .. ".db"
    sqlite.backup{ db = db, to = state.db_backup }
    state.done[#state.done + 1] = "database backed up to " .. state.db_backup
  end
end)

step{ "Disable the feature flags", retries = 1, run = function(p)
  if p.method == "emergency" then
    http.post{ url = api(p, "/api/feature-flags/emergency-rollback"), headers = headers(p) }
    state.done[#state.done + 1] = "emergency rollback endpoint called"
    return
  end
  if p.method ~= "flag" then return end
  for _, flag in ipairs(state.flags) do
    http.post{ url = api(p, "/api/feature-flags/toggle"), headers = headers(p),
               json = { flag_name = flag, enabled = false } }
    -- Poll for the flag to read back disabled instead of `sleep 2` and a single look.
    wait["until"](function() return flag_disabled(p, flag) end,
                  { timeout = "15s", interval = "500ms", what = flag .. " to read back disabled" })
    state.done[#state.done + 1] = "disabled " .. flag
    log.info(flag .. ": enabled == false")
  end
end }

step("Set the environment rollback mode", function(p)
  if p.method ~= "env" then return end
  -- `export` in an operator's shell never reaches a running app; the env file it reads does.
  local file = C.under(p.env_file, p.app_dir, ".env")
  local how = C.set_env_var(file, "FEATURE_FLAG_ROLLBACK_MODE_ENABLED", "true")
  if how == "unchanged" then
    log.info("rollback mode already set in " .. file)
  else
    state.done[#state.done + 1] = "rollback mode " .. how .. " in " .. file
  end
end)

step{ "Stop the application", timeout = "2m", run = function(p)
  if p.method == "git" or p.method == "database" then service.stop(app_service(p)) end
end }

step("Move the code back", function(p)
  if p.method == "git" then
    local st = git.status{ repo = p.app_dir }
    if not st.clean then
      git.stash{ repo = p.app_dir, message = "Backup before rollback " .. C.iso(), untracked = true }
      state.done[#state.done + 1] = "uncommitted work stashed"
    end
    git.checkout{ repo = p.app_dir, ref = p.good_ref }
    state.done[#state.done + 1] = "checked out " .. p.good_ref
  elseif p.method == "files" then
    local files = p.files
    if C.empty(files) then
      files = git.diff_names{ repo = p.app_dir, from = p.good_ref, to = "HEAD" }
    end
    if C.empty(files) then return log.info("no file differs from " .. p.good_ref) end
    -- A file the bad release added is not in good_ref: rolling it back means removing it (kept
    -- in the run's artifacts), not checking it out, which the live run would refuse.
    local restore, added = {}, {}
    for _, f in ipairs(files) do
      local in_good = try(function() return git.rev_parse{ repo = p.app_dir, ref = p.good_ref .. ":" .. f } end)
      if in_good then restore[#restore + 1] = f else added[#added + 1] = f end
    end
    if #restore > 0 then
      log.info("restoring from " .. p.good_ref .. ": " .. table.concat(restore, ", "))
      git.checkout{ repo = p.app_dir, ref = p.good_ref, paths = restore }
      state.done[#state.done + 1] = "restored " .. #restore .. " files from " .. p.good_ref
    end
    for _, f in ipairs(added) do
      if fs.exists(p.app_dir .. "/" .. f) then fs.remove(p.app_dir .. "/" .. f) end
    end
    if #added > 0 then
      state.done[#state.done + 1] = "removed " .. #added .. " files added since " .. p.good_ref ..
        " (kept in the run's artifacts): " .. table.concat(added, ", ")
    end
    if p.commit and not C.empty(p.test_cmd) then
      -- "Test and commit": the tests decide. A test suite writes (caches, reports), so it runs
      -- live only; failing, it leaves the restored files in the tree, uncommitted, to look at.
      local argv = { table.unpack(p.test_cmd) }
      argv.cwd, argv.check, argv.timeout = p.app_dir, false, "15m"
      local t = exec(argv)
      if t.code ~= 0 then
        local out = ((t.stdout or "") .. (t.stderr or "")):sub(-2000)
        error("tests failed after restoring the files (exit " .. tostring(t.code) ..
              "): the partial rollback is left uncommitted for inspection\n" .. out, 0)
      end
      state.done[#state.done + 1] = "tests passed"
    elseif p.commit then
      log.warn("committing the partial rollback without running tests (no test_cmd given)")
    end
    if p.commit and #added > 0 then
      -- Their removal is part of the rollback: stage everything the rollback touched.
      git.commit{ repo = p.app_dir, message = "Partial rollback to " .. p.good_ref .. ": " .. p.reason, all = true }
      state.done[#state.done + 1] = "committed the partial rollback"
    elseif p.commit then
      -- Only the rolled-back files are committed (checkout staged them); the source's
      -- `git add .` took whatever else was lying in the tree.
      git.commit{ repo = p.app_dir, message = "Partial rollback to " .. p.good_ref .. ": " .. p.reason, all = false }
      state.done[#state.done + 1] = "committed the partial rollback"
    end
  end
end)

step("Restore the database", function(p)
  if p.method ~= "database" then return end
  local db = db_path(p)
  local from = p.restore_from
  if C.empty(from) then
    -- The newest backup that is not the copy this run just took of the broken database.
    local best, best_t
    for _, f in ipairs(fs.glob(p.app_dir .. "/data/pcm_ops_tools_backup_*.db")) do
      if f ~= state.db_backup then
        local t = fs.stat(f).mtime or 0
        if not best or t > best_t or (t == best_t and f > best) then best, best_t = f, t end
      end
    end
    from = best
  end
  if from then
    sqlite.restore{ db = db, from = from }   -- keeps the current file first
    state.done[#state.done + 1] = "database restored from " .. from
  elseif not C.empty(p.reinit) then
    if fs.exists(db) then fs.remove(db) end  -- moved to the artifacts, not rm
    local argv = { table.unpack(p.reinit) }
    argv.cwd, argv.timeout = p.app_dir, "5m"
    exec(argv)
    state.done[#state.done + 1] = "database reinitialised"
  else
    error("no backup to restore and no reinit command given", 0)
  end
  if not sqlite.integrity{ db = db } then error(db .. " fails its integrity check", 0) end
end)

step{ "Start the application", timeout = "5m", run = function(p)
  local restart = p.method == "env"
  for _, f in ipairs(state.flags) do restart = restart or NEEDS_RESTART[f] end
  if p.method == "git" or p.method == "database" then
    service.start(app_service(p))
  elseif restart then
    service.restart(app_service(p))
    state.done[#state.done + 1] = "application restarted"
  end
  http.wait_healthy{ url = api(p, "/api/health"), timeout = p.healthy_within }
end }

step("Monitor and verify", function(p)
  local h = headers(p)
  C.require_endpoints({ api(p, "/api/health") }, h)
  local failed = {}
  for _, flag in ipairs(state.flags) do
    if not flag_disabled(p, flag) then failed[#failed + 1] = flag .. " still enabled" end
  end
  if #failed > 0 then error("after the rollback: " .. table.concat(failed, ", "), 0) end
  -- Informational: a failing provider or AWS check makes the verification "partial", not failed.
  local degraded = C.check_endpoints({ api(p, "/api/feature-flags/health"), api(p, "/api/providers"),
                                       api(p, "/api/auth/aws-check-credentials") }, h)
  local logf = C.under(p.log_file, p.app_dir, "logs/pcm_ops_tools.log")
  local errors, n = C.grep_file(logf, { "error", "exception", "failed" }, 10)
  log.info(n .. " error lines in " .. logf .. (n > 0 and "; the last:" or ""))
  for _, l in ipairs(errors) do log.info("  " .. l) end
  local flag_lines = C.grep_file(logf, { "Feature flag" }, 20)
  for _, l in ipairs(flag_lines) do log.info("  " .. l) end
  -- Success criteria: no new errors in the log, performance back, the login flow working.
  if state.errors_before and n - state.errors_before > p.max_new_errors then
    error((n - state.errors_before) .. " new error lines in " .. logf .. " since the rollback began (max_new_errors=" ..
          p.max_new_errors .. ")", 0)
  end
  local t = http.get{ url = api(p, "/api/health"), headers = h, check = false }
  log.info("health answered in " .. tostring(t.elapsed_ms) .. " ms (limit " .. p.max_response_ms .. " ms)")
  if (t.elapsed_ms or math.huge) > p.max_response_ms then
    error("performance not back: /api/health took " .. tostring(t.elapsed_ms) .. " ms (max_response_ms=" .. p.max_response_ms .. ")", 0)
  end
  if not C.empty(p.auth_url) then
    local a = http.get{ url = p.auth_url, headers = h, check = false, timeout = "10s" }
    log.info("auth flow: " .. p.auth_url .. " → " .. tostring(a.status or a.error))
    if not a.status or a.status >= 400 then error("users cannot authenticate after the rollback: " .. p.auth_url .. " → " .. tostring(a.status or a.error), 0) end
  end
  -- The app's memory (ps aux in the source): the process the service runs or adopted.
  local st = service.status(app_service(p))
  if type(st.pid) == "number" then
    local ok, status = pcall(fs.read, "/proc/" .. st.pid .. "/status")
    log.info("pid " .. st.pid .. " memory " .. (ok and type(status) == "string" and status:match("VmRSS:%s*([^\n]+)") or "?"))
  end
  local db = db_path(p)
  if fs.exists(db) then log.info("database " .. db .. ": " .. fs.stat(db).size .. " bytes") end
  state.verification = #degraded == 0 and "success" or "partial"
end)

step{ "Record the rollback log entry", always = true, run = function(p)
  local took = time.now() - (state.started or time.now())
  local feature = p.feature ~= "" and p.feature or (#state.flags > 0 and table.concat(state.flags, ",") or p.method)
  local method = ({ flag = "feature_flag", emergency = "emergency", env = "env", git = "git",
                    files = "git", database = "database", investigate = "none" })[p.method]
  local entry = table.concat({
    "[" .. C.iso() .. "] ROLLBACK " .. (p.method == "investigate" and "INVESTIGATED" or "INITIATED"),
    "Feature: " .. feature,
    "Trigger: " .. p.reason,
    "Method: " .. method,
    "Duration: " .. C.minutes(took),
    "Verification: " .. state.verification,
    "Actions: " .. (#state.done > 0 and table.concat(state.done, "; ") or "none"),
  }, "\n") .. "\n"
  for l in entry:gmatch("[^\n]+") do log.info(l) end
  C.append(C.under(p.rollback_log, p.app_dir, "logs/rollbacks.log"), entry)
  C.notice(p, "finish", { outcome = run.failed and "failed" or "succeeded", issue = p.issue ~= "" and p.issue or p.reason,
                          impact = p.impact, action = p.method .. ": " .. (#state.done > 0 and table.concat(state.done, "; ") or "none"),
                          status = run.failed and ("step " .. run.failed.step .. " '" .. run.failed.step_name .. "': " .. tostring(run.failed.error)) or nil })
end }
