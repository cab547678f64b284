-- Source: 003 "Emergency Rollback Plan" — Pre-Rollback Checklist (3 Backup Current State),
-- 1 Code Rollback (A revert specific commits, B reset to known good), 3 Service-Specific
-- Rollbacks (backend image tag), 4 Configuration Rollback (environment variables),
-- Service-by-Service Rollback Instructions (auth, payments, booking, notifications,
-- integrations), Emergency Recovery Procedures (complete system and partial service scripts),
-- Post-Rollback Validation, Monitoring After Rollback, Rollback Verification Checklist, Incident
-- Report Template. Database steps: alembic-rollback.lua.
local C = require "lib.common"

-- What the partial-rollback script and the service instructions name for each service.
local SERVICES = {
  auth = { files = { "routers/auth.py", "services/auth_service.py" }, flush_cache = true,
           restart = "backend-v2" },
  payments = { files = { "routers/payments.py", "services/payment_service.py" },
               switches = { ENABLE_NEW_PAYMENT_FLOW = "false" }, restart = "backend-v2" },
  booking = { files = { "routers/appointments.py", "services/booking_service.py" }, restart = "backend-v2" },
  notifications = { switches = { ENABLE_ADVANCED_NOTIFICATIONS = "false" }, restart = "notification-worker" },
  integrations = { switches = { ENABLE_GMB_INTEGRATION = "false", ENABLE_ADVANCED_ANALYTICS = "false" },
                   restart = "backend-v2" },
  -- 3 "Frontend service": its tree from the good release, rebuilt, restarted.
  frontend = { files = { "frontend" }, build = true, restart = "frontend-v2" },  -- files: frontend_dir
}

runbook {
  name = "system-rollback",
  version = "1.0.0",
  summary = "Git-based rollback (revert, reset with backup branch, complete system), per-service, image-tag and env-file rollbacks",
  params = C.with_notify{
    mode = { type = "string", default = "revert", choices = { "revert", "reset", "system", "services", "image", "env" },
             doc = "revert: git revert the given commits (safest); reset: hard reset to good_ref after a backup branch; system: stop, reset, restore env, start, validate; services: per-service rollback; image: compose image tag; env: restore the env file" },
    repo = { type = "path", default = ".", doc = "the application repository" },
    commits = { type = "list", default = "", doc = "commits to revert (mode=revert), newest first" },
    good_ref = { type = "string", default = "", doc = "last known good commit (reset, system; services default HEAD~1)" },
    remote = { type = "string", default = "origin" },
    branch = { type = "string", default = "main", doc = "the branch being rolled back" },
    push = { type = "bool", default = false, doc = "push the tag, backup branch and result (force is always with lease)" },
    services = { type = "list", default = "", doc = "auth, payments, booking, notifications, integrations (mode=services)" },
    env_file = { type = "path", doc = "the env file (default <repo>/.env)" },
    env_backup = { type = "path", doc = "the env file to restore (default <repo>/.env.backup)" },
    restore_env = { type = "bool", default = false, doc = "mode=services: restore the whole env file first (previous JWT, Stripe, SendGrid, Twilio secrets)" },
    redis_url = { type = "string", secret = true, default = "", doc = "Redis holding auth caches (mode=services with auth)" },
    compose_file = { type = "path", doc = "docker-compose.yml (mode=image; default <repo>/docker-compose.yml)" },
    image = { type = "string", default = "", doc = "image to roll back, e.g. ghcr.io/your-org/backend-v2 (mode=image)" },
    image_tag = { type = "string", default = "", doc = "the previous tag (mode=image)" },
    backend = { type = "string", default = "compose", choices = { "systemd", "supervisor", "pm2", "compose" },
                doc = "the services' manager (their names are the manager's names)" },
    app_services = { type = "list", default = "backend-v2,frontend-v2", doc = "services stopped and started by a complete rollback" },
    health = { type = "list", default = "http://127.0.0.1:8000/health,http://127.0.0.1:8000/api/v2/health,http://127.0.0.1:3000",
               doc = "endpoints that must answer afterwards" },
    frontend_dir = { type = "string", default = "frontend", doc = "the frontend, relative to repo (services=frontend checks it out, runs npm ci and the build script there)" },
    build_script = { type = "string", default = "build", doc = "npm script that builds the frontend" },
    image_service = { type = "string", default = "", doc = "mode=image: the service whose image rolls back (default the first of app_services; frontend-v2 for the frontend)" },
    integration_restore = { type = "list", default = "", doc = "services=integrations: argv that restores the app's integration settings backup, run in repo (003: IntegrationService.restore_backup), e.g. python3,-m,app.tools.restore_integrations" },
    booking_cache_clear = { type = "list", default = "", doc = "services=booking: argv that clears the app's booking caches, run in repo (003: BookingCacheService)" },
    env_vars = { type = "list", default = "", doc = "mode=env: restore only these variables from env_backup (4: export the previous values), the rest of the env file kept; the values never pass through the journal" },
    metrics_url = { type = "url", doc = "a JSON endpoint of the app's metrics (active sessions, booking success rate), read after the rollback; its numbers are logged" },
    metric_floors = { type = "list", default = "", doc = "name:min pairs checked against metrics_url's numbers after the rollback, e.g. booking_success_rate:95" },
    security_headers = { type = "list", default = "", doc = "response headers the first health URL must send after the rollback (Verification checklist: security measures active), e.g. Strict-Transport-Security,X-Content-Type-Options" },
    monitor_every = { type = "duration", default = "30s", doc = "how often the monitoring samples" },
    log_must_grow = { type = "bool", default = false, doc = "the monitoring fails if app_log is not written while it watches (Verification checklist: logs being written)" },
    workers = { type = "list", default = "", doc = "background workers that must be running after the rollback (Verification checklist: background jobs processing), by the manager's names" },
    max_p95_ms = { type = "int", default = 0, doc = "after the rollback, the P95 of 20 requests to the first health URL must be under this (Verification checklist: performance acceptable); 0: not checked" },
    validate = { type = "list", default = "", doc = "a read-only validation argv run in repo afterwards, e.g. python,scripts/health_check_all.py,--fail-on-warn" },
    healthy_within = { type = "duration", default = "120s" },
    monitor_for = { type = "duration", default = "0s", doc = "Monitoring After Rollback: watch health and the error log this long, e.g. 60m" },
    app_log = { type = "path", doc = "the application log watched for ERROR lines (default <repo>/logs/app.log)" },
  },
}

local state = { done = {}, defined = {} }

local function svc(p, name)
  if not state.defined[name] then
    local def = { name = name, backend = p.backend }
    if p.backend == "compose" then
      def.config, def.cwd = C.under(p.compose_file, p.repo, "docker-compose.yml"), p.repo
    end
    service.define(def)
    state.defined[name] = true
  end
  return name
end

local function image_service(p) return p.image_service ~= "" and p.image_service or p.app_services[1] end

local function env_file(p) return C.under(p.env_file, p.repo, ".env") end

local function push(p, refspec, force)
  if not p.push then return end
  git.push{ repo = p.repo, remote = p.remote, refspec = refspec, force = force or nil }
  state.done[#state.done + 1] = "pushed " .. refspec .. (force and " (force with lease)" or "")
end

step("Assess and record the current state", function(p)
  state.started = time.now()
  if p.mode == "revert" and C.empty(p.commits) then error("mode revert needs commits", 0) end
  if (p.mode == "reset" or p.mode == "system") and C.empty(p.good_ref) then
    error("mode " .. p.mode .. " needs good_ref (the last known good commit)", 0)
  end
  if p.mode == "services" then
    if C.empty(p.services) then error("mode services needs services", 0) end
    for _, s in ipairs(p.services) do
      if not SERVICES[s] then error("unknown service '" .. s .. "' (" .. table.concat(C.keys(SERVICES), ", ") .. ")", 0) end
    end
  end
  if p.mode == "image" and (C.empty(p.image) or C.empty(p.image_tag)) then error("mode image needs image and image_tag", 0) end
  local head = git.head{ repo = p.repo }
  state.head = head.commit
  log.info("HEAD " .. tostring(head.short or head.commit) .. " " .. tostring(head.ref or "(detached)"))
  for _, c in ipairs(git.log{ repo = p.repo, ref = "HEAD", max = 20 }) do
    log.info("  " .. tostring(c.commit):sub(1, 8) .. " " .. tostring(c.summary))
  end
  local st = git.status{ repo = p.repo }
  if not st.clean then log.warn("uncommitted changes: " .. table.concat(st.modified or {}, ", ")) end
  if not C.empty(p.good_ref) then
    local files = git.diff_names{ repo = p.repo, from = p.good_ref, to = "HEAD" }
    log.info(#files .. " files differ from " .. p.good_ref)
  end
  C.notice(p, "start", { issue = p.issue, impact = p.impact, status = "rollback " .. p.mode })
end)

-- "Create emergency backup": a tag on what is deployed, before anything moves.
step("Check out the branch and tag an emergency backup", function(p)
  if p.mode == "image" or p.mode == "env" then return end
  if p.mode == "revert" or p.mode == "reset" or p.mode == "system" then
    -- The source's `git checkout main` first: the branch that is reverted or reset, and pushed,
    -- is the one named (a checkout over uncommitted work is refused).
    local head = git.head{ repo = p.repo }
    if head.ref ~= "refs/heads/" .. p.branch then
      git.checkout{ repo = p.repo, ref = p.branch }
      state.done[#state.done + 1] = "checked out " .. p.branch
    end
  end
  state.tag = "emergency-backup-" .. C.stamp()
  git.tag{ repo = p.repo, name = state.tag, ref = "HEAD", message = "before " .. p.mode .. " rollback" }
  state.done[#state.done + 1] = "tagged " .. state.tag
  push(p, "refs/tags/" .. state.tag)
end)

-- "Pull previous image version", before anything stops: an image that cannot be had fails the
-- rollback while the service still runs. An image already here (built or imported locally) is
-- not pulled.
step{ "Fetch the previous image", timeout = "15m", run = function(p)
  if p.mode ~= "image" then return end
  local ref = p.image .. ":" .. p.image_tag
  local have = exec{ "docker", "image", "inspect", "--format", "{{.Id}}", ref, readonly = true, check = false, timeout = "1m" }
  if have.code == 0 then
    log.info(ref .. " is here already")
  else
    exec{ "docker", "pull", ref, timeout = "10m" }
  end
end }

step{ "Stop the services", timeout = "3m", run = function(p)
  if p.mode == "system" then
    for i = #p.app_services, 1, -1 do service.stop(svc(p, p.app_services[i])) end
  elseif p.mode == "image" then
    service.stop(svc(p, image_service(p)))
  end
end }

step{ "Roll the code back", timeout = "10m", run = function(p)
  if p.mode == "revert" then
    -- Each revert is a new commit: history is kept and the rollback itself can be undone.
    for _, c in ipairs(p.commits) do
      git.revert{ repo = p.repo, commit = c }
      state.done[#state.done + 1] = "reverted " .. c
    end
    push(p, "refs/heads/" .. p.branch)
  elseif p.mode == "reset" or p.mode == "system" then
    local backup = "emergency-backup-" .. C.stamp()
    git.branch{ repo = p.repo, name = backup, ref = "HEAD" }
    state.done[#state.done + 1] = "backup branch " .. backup
    push(p, "refs/heads/" .. backup)
    -- git.reset keeps its own backup ref and sets uncommitted work aside; nothing is lost.
    git.reset{ repo = p.repo, ref = p.good_ref, hard = true }
    state.done[#state.done + 1] = "reset to " .. p.good_ref
    push(p, "refs/heads/" .. p.branch, true)
  elseif p.mode == "services" then
    local ref = C.empty(p.good_ref) and "HEAD~1" or p.good_ref
    local files = {}
    for _, s in ipairs(p.services) do
      for _, f in ipairs(SERVICES[s].files or {}) do files[#files + 1] = s == "frontend" and p.frontend_dir or f end
    end
    if #files > 0 then
      C.restore_paths(p.repo, ref, files)
      state.done[#state.done + 1] = "restored " .. table.concat(files, ", ") .. " from " .. ref
    end
    if C.contains(p.services, "frontend") then
      local dir = p.repo .. "/" .. p.frontend_dir
      npm.ci{ dir = dir }
      npm.run{ dir = dir, script = p.build_script }
      state.done[#state.done + 1] = "frontend rebuilt"
    end
  end
end }

-- Puts back the lines of `keys` from `from` into `file` in place (a variable the file lacks is
-- appended), through a small Python program whose argv holds only paths and names: the values
-- are read and written by it, never by the runbook, so no secret reaches the journal.
local MERGE_ENV = [[
import os, re, sys, tempfile
src, dst, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
pat = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
def lines(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [l if l.endswith("\n") else l + "\n" for l in f]
old = {}
for l in lines(src):
    m = pat.match(l)
    if m:
        old[m.group(1)] = l
missing = [k for k in keys if k not in old]
if missing:
    sys.stderr.write("not in " + src + ": " + ", ".join(missing) + "\n")
    sys.exit(3)
out, seen = [], set()
for l in lines(dst):
    m = pat.match(l)
    if m and m.group(1) in keys:
        out.append(old[m.group(1)])
        seen.add(m.group(1))
    else:
        out.append(l)
out += [old[k] for k in keys if k not in seen]
mode = os.stat(dst).st_mode & 0o7777
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)), prefix=".env-merge-")
with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
    f.writelines(out)
os.chmod(tmp, mode)
os.replace(tmp, dst)
print("restored " + ", ".join(keys))
]]

step("Roll the configuration back", function(p)
  local file = env_file(p)
  if p.mode == "env" and not C.empty(p.env_vars) then
    local from = C.under(p.env_backup, p.repo, ".env.backup")
    if not fs.exists(from) then error("no env backup at " .. from, 0) end
    for _, k in ipairs(p.env_vars) do
      if not tostring(k):match("^[%a_][%w_]*$") then error("env_vars: '" .. tostring(k) .. "' is not a variable name", 0) end
    end
    fs.backup{ path = file, private = true }   -- the whole current file, 0600, in the artifacts
    exec{ "python3", "-c", MERGE_ENV, from, file, table.unpack(p.env_vars) }
    state.done[#state.done + 1] = "restored " .. table.concat(p.env_vars, ", ") .. " from " .. from
  elseif p.mode == "env" or p.mode == "system" or (p.mode == "services" and p.restore_env) then
    local from = C.under(p.env_backup, p.repo, ".env.backup")
    if fs.exists(from) then
      -- The current file is kept in the run's artifacts; secrets are copied, never printed.
      fs.restore(from, file)
      state.done[#state.done + 1] = "env file restored from " .. from
    elseif p.mode == "env" then
      error("no env backup at " .. from, 0)
    else
      log.warn("no env backup at " .. from .. "; env left as it is")
    end
  end
  if p.mode == "services" then
    for _, s in ipairs(p.services) do
      local sw = SERVICES[s].switches or {}
      for _, key in ipairs(C.keys(sw)) do
        local how = C.set_env_var(file, key, sw[key])
        if how ~= "unchanged" then state.done[#state.done + 1] = key .. "=" .. sw[key] end
      end
    end
  end
  if p.mode == "image" then
    -- Only the image: lines of the named image change (the source's sed rewrote every :latest);
    -- the journal gets those lines, never the file and its inline passwords.
    compose.set_image{ file = C.under(p.compose_file, p.repo, "docker-compose.yml"), image = p.image, tag = p.image_tag }
    state.done[#state.done + 1] = "image " .. p.image .. " at " .. p.image_tag
  end
end)

-- The app's own procedures the service instructions call (its Python service classes): run as
-- the argv the team gives, in the repository, before the restart. They change the app's state,
-- so they run live only.
local function app_hook(p, service, argv, what)
  if p.mode ~= "services" or not C.contains(p.services, service) or C.empty(argv) then return end
  local a = { table.unpack(argv) }
  a.cwd, a.timeout = p.repo, "10m"
  exec(a)
  state.done[#state.done + 1] = what
end

step("Clear caches", function(p)
  app_hook(p, "integrations", p.integration_restore, "integration settings restored")
  app_hook(p, "booking", p.booking_cache_clear, "booking caches cleared")
  if p.mode ~= "services" or not C.contains(p.services, "auth") or C.empty(p.redis_url) then return end
  -- FLUSHDB of the auth cache database only (not FLUSHALL), after the operator confirms (or --yes).
  confirm("Flush the auth cache database?")
  redis.flush{ url = p.redis_url, confirm = true }
  state.done[#state.done + 1] = "auth cache flushed"
end)

step{ "Start the services", timeout = "5m", run = function(p)
  if p.mode == "system" then
    for _, s in ipairs(p.app_services) do service.start(svc(p, s)) end
  elseif p.mode == "image" then
    service.start(svc(p, image_service(p)))
  elseif p.mode == "env" then
    service.restart(svc(p, p.app_services[1]))
  elseif p.mode == "services" then
    local seen = {}
    for _, s in ipairs(p.services) do
      local r = SERVICES[s].restart
      if not seen[r] then seen[r] = true; service.restart(svc(p, r)) end
    end
  end
end }

-- Post-rollback validation: polling instead of `sleep 30`; every endpoint must answer.
step{ "Validate", timeout = "15m", run = function(p)
  C.wait_healthy({ p.health[1] }, p.healthy_within)
  C.require_endpoints(p.health)
  if p.mode ~= "image" and p.mode ~= "env" then
    local head = git.head{ repo = p.repo }
    log.info("HEAD now " .. tostring(head.short or head.commit))
  end
  if not C.empty(p.security_headers) then
    local r = http.get{ url = p.health[1], check = false, timeout = "10s" }
    local have = {}
    for k in pairs(r.headers or {}) do have[tostring(k):lower()] = true end
    local missing = {}
    for _, h in ipairs(p.security_headers) do
      if not have[tostring(h):lower()] then missing[#missing + 1] = h end
    end
    if #missing > 0 then error("security measures: " .. p.health[1] .. " does not send " .. table.concat(missing, ", "), 0) end
    log.info("security headers present: " .. table.concat(p.security_headers, ", "))
  end
  if not C.empty(p.metrics_url) then
    -- Monitoring 3 (active sessions, booking success rate): what the app's metrics say, with floors.
    local r = http.get{ url = p.metrics_url, check = false, timeout = "10s" }
    local ok, doc = pcall(json.decode, r.body or "")
    if r.status ~= 200 or not ok or type(doc) ~= "table" then
      error("metrics: " .. p.metrics_url .. " → " .. tostring(r.status or r.error) .. " (want 200 and a JSON object)", 0)
    end
    local names = {}
    for k, v in pairs(doc) do if type(v) == "number" then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do log.info("metric " .. k .. " = " .. tostring(doc[k])) end
    for _, floor in ipairs(p.metric_floors) do
      local name, min = tostring(floor):match("^([%w_%.%-]+):(%-?[%d%.]+)$")
      if not name then error("metric_floors: '" .. tostring(floor) .. "' is not name:min", 0) end
      local v = doc[name]
      if type(v) ~= "number" then error("metrics: " .. p.metrics_url .. " has no number " .. name, 0) end
      if v < tonumber(min) then error("metric " .. name .. " = " .. tostring(v) .. " is below " .. min, 0) end
    end
  end
  for _, w in ipairs(p.workers) do
    local st = service.status(svc(p, w))
    log.info("worker " .. w .. ": " .. tostring(st.state) .. (st.detail and (" (" .. tostring(st.detail) .. ")") or ""))
    if st.state ~= "running" then error("worker " .. w .. " is " .. tostring(st.state) .. ": background jobs are not processed", 0) end
  end
  if p.max_p95_ms > 0 then
    local r = http.sample{ url = p.health[1], n = 20, concurrency = 4, timeout = "10s" }
    log.info(string.format("performance: P95 %s ms over %d requests to %s (limit %d ms)", tostring(r.p95_ms), r.n or 20,
                           p.health[1], p.max_p95_ms))
    if (r.errors or 0) > 0 then error(r.errors .. " of 20 requests to " .. p.health[1] .. " failed", 0) end
    if (r.p95_ms or 0) >= p.max_p95_ms then
      error(string.format("performance not acceptable: P95 %s ms >= %d ms", tostring(r.p95_ms), p.max_p95_ms), 0)
    end
  end
  if not C.empty(p.validate) then
    local argv = { table.unpack(p.validate) }
    -- The validation suite writes (caches, test data): a change, run live only.
    argv.cwd, argv.timeout = p.repo, "15m"
    exec(argv)
  end
end }

step{ "Monitor after the rollback", timeout = "4h", run = function(p)
  C.monitor{ urls = p.health, duration = p.monitor_for, interval = p.monitor_every,
             log_file = C.under(p.app_log, p.repo, "logs/app.log"), needles = { "ERROR" },
             log_must_grow = p.log_must_grow }
end }

step{ "Incident report", always = true, run = function(p)
  C.print_block("Incident report (draft)", {
    "Date: " .. C.iso(),
    "Duration: " .. C.minutes(time.now() - (state.started or time.now())),
    "Rollback: " .. p.mode .. (C.empty(p.services) and "" or " (" .. table.concat(p.services, ", ") .. ")"),
    "From: " .. tostring(state.head),
    "Emergency tag: " .. tostring(state.tag or "-"),
    "Resolution: " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
    "Still to fill: summary, root cause, prevention, lessons learned",
  })
  C.notice(p, "finish", { outcome = run.failed and "failed" or "succeeded", issue = p.issue, impact = p.impact,
                          action = p.mode .. ": " .. (#state.done > 0 and table.concat(state.done, "; ") or "nothing changed"),
                          status = run.failed and ("step " .. run.failed.step .. " '" .. run.failed.step_name .. "': " .. tostring(run.failed.error)) or nil })
end }
