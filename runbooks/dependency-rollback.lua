-- Source: 000 "PR #30 Rollback Procedures" — Emergency Rollback Procedures, Levels 1-3, the
-- quick and comprehensive rollback scripts, and Post-Rollback Verification.
local C = require "lib.common"

runbook {
  name = "dependency-rollback",
  version = "1.0.0",
  summary = "Roll jsonschema / pydantic-core back (L1 pin, L2 restore from backup, L3 fresh environment)",
  params = C.with_notify{
    product = { type = "string", default = "SizeWise Suite", doc = "the product name in the user communication" },
    level = { type = "string", default = "L1", choices = { "L1", "L2", "L3" },
              doc = "L1 pin the packages (<5 min); L2 restore files from the newest backup and reinstall (<15 min); L3 fresh venv and node_modules (<30 min)" },
    app_dir = { type = "path", default = ".", doc = "project root holding backend/ and frontend/" },
    venv = { type = "path", doc = "the backend's virtualenv (default <app_dir>/backend/venv)" },
    packages = { type = "list", default = "jsonschema==4.23.0,pydantic-core==2.33.2",
                 doc = "the last good versions, name==version" },
    find_links = { type = "path", doc = "a directory of wheels for pip (offline installs)" },
    no_index = { type = "bool", default = false, doc = "do not reach the package index" },
    backups = { type = "path", doc = "where pre-deploy-backup put its backups (default <app_dir>/backups)" },
    backup_pattern = { type = "string", default = "pr-30-*", doc = "name pattern of the backup directories" },
    with_frontend = { type = "bool", default = true, doc = "stop, reinstall and restart the Next.js frontend too" },
    backend = { type = "string", default = "process", choices = { "process", "systemd", "supervisor", "pm2", "compose" },
                doc = "how the services are run" },
    backend_service = { type = "string", default = "backend", doc = "name of the backend service" },
    frontend_service = { type = "string", default = "frontend", doc = "name of the frontend service" },
    backend_url = { type = "url", default = "http://127.0.0.1:5000/health", doc = "backend health" },
    frontend_url = { type = "url", default = "http://127.0.0.1:3000/api/health", doc = "frontend health" },
    critical = { type = "list", default = "http://127.0.0.1:5000/api/calculations/test",
                 doc = "critical endpoints that must answer after the rollback" },
    pg_dsn = { type = "string", secret = true, default = "", doc = "PostgreSQL to ping after the rollback (optional)" },
    max_p95_ms = { type = "int", default = 0, doc = "Post-Rollback extended verification: the P95 of 20 requests to the first critical endpoint (or backend_url) must be under this; 0: not checked" },
    verify_cmd = { type = "list", default = "", doc = "a read-only check run in backend/ afterwards, argv (e.g. venv/bin/python,-m,pytest,tests/critical)" },
    healthy_within = { type = "duration", default = "120s", doc = "how long the services get to become healthy" },
  },
}

local objective = { L1 = 5, L2 = 15, L3 = 30 }
local state = { before = {}, backup = nil, done = {} }

local function dirs(p)
  local backend_dir = p.app_dir .. "/backend"
  return backend_dir, p.app_dir .. "/frontend", C.under(p.venv, backend_dir, "venv")
end

local function services(p)
  if state.services then return state.services end
  local backend_dir, frontend_dir, venv = dirs(p)
  fs.mkdir(p.app_dir .. "/logs")
  local names = {
    C.service(p.backend, p.backend_service, {
      argv = { venv .. "/bin/python", "app.py" }, cwd = backend_dir,
      log = p.app_dir .. "/logs/backend-rollback.log", health = p.backend_url,
      -- Started by hand (`python app.py &`, 000's Step 3) it has no pidfile: adopted by its port.
      port = C.url_port(p.backend_url) }),
  }
  if p.with_frontend then
    names[#names + 1] = C.service(p.backend, p.frontend_service, {
      argv = { "npm", "run", "dev" }, cwd = frontend_dir,
      log = p.app_dir .. "/logs/frontend-rollback.log", health = p.frontend_url,
      port = C.url_port(p.frontend_url) })  -- `npm run dev &`: its node child holds the port
  end
  state.services = names
  return names
end

step("Record the current state", function(p)
  state.started = time.now()
  local backend_dir, _, venv = dirs(p)
  local pins = C.parse_pins(p.packages)
  if p.level ~= "L3" and not fs.exists(venv .. "/bin/python") then
    error("no virtualenv at " .. venv .. " (L3 builds a fresh one)", 0)
  end
  if fs.exists(venv .. "/bin/python") then
    state.before = pip.versions{ venv = venv }
    for _, name in ipairs(C.keys(pins)) do
      log.info(string.format("%s: installed %s, last good %s", name,
                             tostring(state.before[name] or "absent"), pins[name]))
    end
  end
  if p.level == "L2" then
    local dir = C.under(p.backups, p.app_dir, "backups")
    state.backup = fs.latest(dir, p.backup_pattern)
    if not state.backup then error("no backup matching " .. p.backup_pattern .. " in " .. dir, 0) end
    log.info("newest backup: " .. state.backup)
  end
  log.info("level " .. p.level .. ", objective < " .. objective[p.level] .. " minutes; backend in " .. backend_dir)
  C.notice(p, "start", { issue = p.issue ~= "" and p.issue or "PR #30 dependency pins", impact = p.impact, eta = objective[p.level] and objective[p.level] * 60 or nil, status = "rollback level " .. p.level })
end)

-- Replaces `pkill -f "python.*app.py"` / `pkill -f "npm.*start"`: only the processes these
-- services started are signalled, TERM then KILL after a grace period.
step{ "Stop the services", timeout = "2m", run = function(p)
  C.stop_all(services(p))
end }

step{ "Snapshot the installed packages", run = function(p)
  local _, _, venv = dirs(p)
  if fs.exists(venv .. "/bin/python") then
    local snap = pip.freeze{ venv = venv }
    state.snapshot = snap.path
    log.info("pip freeze kept at " .. tostring(snap.path) .. " (pip.restore can put it back)")
  end
end }

step{ "Restore files from the newest backup", run = function(p)
  if p.level ~= "L2" then return log.info("only at L2") end
  local backend_dir = dirs(p)
  local b = state.backup
  -- fs.restore moves what is there now into the run's artifacts first (the source's `cp -r`
  -- merged the backup over the live config and lost what it replaced).
  for _, pair in ipairs{ { "requirements.txt.backup", "requirements.txt" },
                         { "config-backup", "config" }, { "app.py.backup", "app.py" } } do
    if fs.exists(b .. "/" .. pair[1]) then
      fs.restore(b .. "/" .. pair[1], backend_dir .. "/" .. pair[2])
      state.done[#state.done + 1] = "restored " .. pair[2]
    else
      log.warn("backup has no " .. pair[1])
    end
  end
end }

step{ "Clear caches and build a fresh environment", timeout = "20m", run = function(p)
  if p.level ~= "L3" then return log.info("only at L3") end
  local backend_dir, frontend_dir, venv = dirs(p)
  -- Removed paths go to the run's artifacts, not `rm -rf`: an L3 that makes things worse can be
  -- undone by hand.
  local caches = { backend_dir .. "/__pycache__", backend_dir .. "/api/__pycache__" }
  if p.with_frontend then
    caches[#caches + 1] = frontend_dir .. "/.next"
    caches[#caches + 1] = frontend_dir .. "/node_modules/.cache"
  end
  for _, c in ipairs(caches) do
    if fs.exists(c) then fs.remove(c) end
  end
  -- clear = true keeps the old venv in the artifacts instead of `rm -rf venv`.
  pip.venv{ path = venv, clear = true }
  state.done[#state.done + 1] = "fresh venv at " .. venv
end }

step{ "Install the packages", timeout = "20m", run = function(p)
  local backend_dir, frontend_dir, venv = dirs(p)
  local pins = C.parse_pins(p.packages)
  local index = { find_links = not C.empty(p.find_links) and p.find_links or nil,
                  no_index = p.no_index or nil }
  if p.level == "L1" then
    -- pip.pin installs and then checks every package is at the asked version.
    pip.pin{ venv = venv, packages = pins, find_links = index.find_links, no_index = index.no_index }
    state.done[#state.done + 1] = "pinned " .. C.pins_text(pins)
    return
  end
  -- L2 / L3: reinstall everything, then make sure the rollback versions won. The backup's
  -- freeze has the exact versions from before the deploy; requirements.txt may hold ranges.
  local freeze = state.backup and (state.backup .. "/pip-freeze-backup.txt")
  if freeze and fs.exists(freeze) then
    pip.restore{ venv = venv, snapshot = freeze, find_links = index.find_links, no_index = index.no_index }
    state.done[#state.done + 1] = "reinstalled from " .. freeze
  else
    local reqs = backend_dir .. "/requirements.txt"
    pip.install{ venv = venv, requirements = reqs, find_links = index.find_links, no_index = index.no_index }
    state.done[#state.done + 1] = "reinstalled from " .. reqs
  end
  pip.pin{ venv = venv, packages = pins, find_links = index.find_links, no_index = index.no_index }
  state.done[#state.done + 1] = "pinned " .. C.pins_text(pins)
  if p.level == "L3" and p.with_frontend then
    -- npm ci installs exactly the lockfile (the source's `rm -rf node_modules; npm install`
    -- could resolve different versions).
    npm.ci{ dir = frontend_dir }
    state.done[#state.done + 1] = "npm ci in " .. frontend_dir
  end
end }

step("Verify the versions and dependency consistency", function(p)
  local _, _, venv = dirs(p)
  local pins = C.parse_pins(p.packages)
  local now = pip.versions{ venv = venv }
  local wrong = {}
  for _, name in ipairs(C.keys(pins)) do
    if now[name] ~= pins[name] then
      wrong[#wrong + 1] = name .. " is " .. tostring(now[name]) .. ", expected " .. pins[name]
    end
  end
  if #wrong > 0 then error(table.concat(wrong, "; "), 0) end
  local chk = pip.check{ venv = venv }
  if chk.ok == false then error("pip check: " .. table.concat(chk.problems or {}, "; "), 0) end
  log.info("dependencies consistent")
end)

step{ "Start the services", timeout = "5m", run = function(p)
  C.start_all(services(p))
end }

-- Replaces `sleep 10` / `sleep 30` and a one-shot curl: poll until healthy, then the critical
-- endpoints must answer.
step{ "Health and critical endpoints", timeout = "5m", run = function(p)
  local urls = { p.backend_url }
  if p.with_frontend then urls[#urls + 1] = p.frontend_url end
  C.wait_healthy(urls, p.healthy_within)
  C.require_endpoints(p.critical)
  if not C.empty(p.pg_dsn) then
    if not pg.ping{ dsn = p.pg_dsn } then error("PostgreSQL does not answer", 0) end
    log.info("PostgreSQL connection verified")
  end
  if p.max_p95_ms > 0 then
    -- "Performance verification": a timed sample instead of one timed test run.
    local url = not C.empty(p.critical) and p.critical[1] or p.backend_url
    local r = http.sample{ url = url, n = 20, concurrency = 4, timeout = "10s" }
    log.info(string.format("performance: P95 %s ms over %d requests to %s (limit %d ms)", tostring(r.p95_ms), r.n or 20, url,
                           p.max_p95_ms))
    if (r.errors or 0) > 0 then error(r.errors .. " of 20 requests to " .. url .. " failed", 0) end
    if (r.p95_ms or 0) >= p.max_p95_ms then
      error(string.format("performance not back: P95 %s ms >= %d ms", tostring(r.p95_ms), p.max_p95_ms), 0)
    end
  end
  if not C.empty(p.verify_cmd) then
    local backend_dir = dirs(p)
    local argv = { table.unpack(p.verify_cmd) }
    -- A relative program (venv/bin/python) is in backend/, where the check runs.
    if argv[1]:find("/") and argv[1]:sub(1, 1) ~= "/" then argv[1] = backend_dir .. "/" .. argv[1] end
    -- A test suite writes (caches, test databases): a change, run live only, never in a dry-run.
    argv.cwd, argv.timeout = backend_dir, "10m"
    exec(argv)
  end
end }

step{ "Summary", always = true, run = function(p)
  local took = time.now() - (state.started or time.now())
  C.print_block("PR #30 rollback " .. p.level, {
    "Finished: " .. C.iso(),
    "Duration: " .. C.minutes(took) .. " (objective < " .. objective[p.level] .. " min)",
    "Done: " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
    "Previous pip state: " .. tostring(state.snapshot or "not taken"),
  })
  if took > objective[p.level] * 60 then log.warn("the recovery time objective was missed") end
  local ok = not run.failed
  C.notice(p, "finish", { outcome = ok and "succeeded" or "failed", issue = p.issue ~= "" and p.issue or "PR #30 dependency pins",
                          impact = p.impact, action = "level " .. p.level .. ": " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
                          status = run.failed and ("step " .. run.failed.step .. " '" .. run.failed.step_name .. "': " .. tostring(run.failed.error)) or nil })
  if ok then C.notice_users(p, { product = p.product, impact = p.impact }) end
end }
