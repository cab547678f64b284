-- Helpers shared by the runbooks in this directory: `local C = require "lib.common"`.
-- Everything that touches the world still goes through the primitives, so it is journaled,
-- previewed in a dry-run and redacted; this file only builds arguments and formats text.
local C = {}

-- The helpers that are not specific to one seed live in the standard library (stdlib/runbook/);
-- the names below delegate to them, so the runbooks here keep working unchanged.
local checks = require "runbook.checks"
local monitor = require "runbook.monitor"
local metrics = require "runbook.metrics"
local files = require "runbook.files"
local notify = require "runbook.notify"

-- UTC "YYYYmmdd-HHMMSS" (time.now() is journaled, so a replay names the same backups). Without
-- an argument, the same stamp for the whole run: a run's tag, branch and backup names match.
local run_time
function C.stamp(t)
  if not t then
    run_time = run_time or time.now()
    t = run_time
  end
  return time.format(t, "%Y%m%d-%H%M%S")
end

-- "2025-06-22 10:04:05 UTC" for log entries and reports.
function C.iso(t) return time.format(t or time.now(), "%Y-%m-%d %H:%M:%S UTC") end

function C.minutes(seconds) return string.format("%.1f min", seconds / 60) end

-- Seconds in a duration string as params hold them ("500ms", "90s", "5m", "1h30m"); a number is
-- taken as seconds. An ill-formed one is an error naming it.
function C.seconds(d)
  if type(d) == "number" then return d end
  local s, total, n = tostring(d), 0, 0
  for num, unit in s:gmatch("(%d+%.?%d*)(%a+)") do
    local k = ({ ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 })[unit]
    if not k then error("duration '" .. s .. "': unknown unit '" .. unit .. "'", 0) end
    total, n = total + tonumber(num) * k, n + 1
  end
  if n == 0 then error("duration '" .. s .. "' is not like \"30s\"", 0) end
  return total
end

function C.empty(v) return v == nil or v == "" or (type(v) == "table" and next(v) == nil) end

-- A path param left empty means "the usual place under root".
function C.under(value, root, rel)
  if C.empty(value) then return root .. "/" .. rel end
  return value
end

function C.contains(list, x)
  for _, v in ipairs(list or {}) do if v == x then return true end end
  return false
end

function C.keys(t)
  local out = {}
  for k in pairs(t or {}) do out[#out + 1] = k end
  table.sort(out)
  return out
end

function C.basename(p) return (p:gsub("/+$", ""):match("([^/]+)$")) or p end

-- "name==1.2.3" list items (as the sources write them for pip) -> { name = "1.2.3" }.
function C.parse_pins(list, what)
  local out = {}
  for _, item in ipairs(list or {}) do
    local name, version = item:match("^%s*([%w%._%-]+)%s*==%s*([%w%._%-+!]+)%s*$")
    if not name then
      error((what or "packages") .. ": '" .. item .. "' is not name==version", 0)
    end
    out[name] = version
  end
  return out
end

function C.pins_text(pins)
  local parts = {}
  for _, name in ipairs(C.keys(pins)) do parts[#parts + 1] = name .. " " .. pins[name] end
  return table.concat(parts, ", ")
end

-- Lines of `text` that contain any of `needles` (case-insensitive), the last `max` of them.
function C.grep(text, needles, max)
  local hits = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local low = line:lower()
    for _, n in ipairs(needles) do
      if low:find(n:lower(), 1, true) then hits[#hits + 1] = line; break end
    end
  end
  if max and #hits > max then
    local tail = {}
    for i = #hits - max + 1, #hits do tail[#tail + 1] = hits[i] end
    return tail, #hits
  end
  return hits, #hits
end

-- A log file's last `max` (20) matching lines (case-insensitive) and their count, or an empty
-- list when the file is absent (logs rotate): checks.log_errors.
function C.grep_file(path, needles, max)
  if C.empty(path) then return {}, 0 end
  local g = checks.log_errors{ path = path, patterns = needles, max = max or 20 }
  return g.lines, g.count
end

-- A SQL identifier for count queries: identifiers cannot be bound parameters, so they are
-- checked against a strict pattern instead of being pasted in as given.
function C.ident(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error("'" .. tostring(name) .. "' is not a plain table name", 0)
  end
  return '"' .. name .. '"'
end

-- Sets KEY=value in an env file (files.set_env: the file's content never passes through the run,
-- a private backup first). Returns "unchanged", "set" or "added".
function C.set_env_var(file, key, value)
  return files.set_env{ path = file, key = key, value = tostring(value) }.result
end

-- Queues -------------------------------------------------------------------------------------------

-- The counters in a GET /api/queue/stats body, as { [queue] = { waiting, active, completed,
-- failed } }. Accepts Bull's usual shapes: an object keyed by queue, { queues = {...} } keyed or
-- as a list of { name = ... }, counters at the top or under counts. nil when it is not JSON.
function C.queue_counts(body_text)
  local ok, body = pcall(json.decode, body_text or "")
  if not ok or type(body) ~= "table" then return nil end
  local src = type(body.queues) == "table" and body.queues or body
  local out = {}
  for k, v in pairs(src) do
    if type(v) == "table" then
      local name = type(k) == "string" and k or v.name
      if type(name) == "string" then
        local c = type(v.counts) == "table" and v.counts or v
        out[name] = { waiting = tonumber(c.waiting) or 0, active = tonumber(c.active) or 0,
                      completed = tonumber(c.completed) or 0, failed = tonumber(c.failed) or 0 }
      end
    end
  end
  return out
end

-- Schema and relationships -----------------------------------------------------------------------

-- "child.column->parent.column" → the four names, each a plain identifier.
function C.parse_relation(rel)
  local ct, cc, pt, pc = tostring(rel):match("^([%a_][%w_]*)%.([%a_][%w_]*)%s*%->%s*([%a_][%w_]*)%.([%a_][%w_]*)$")
  if not ct then error("relation '" .. tostring(rel) .. "' is not child.column->parent.column", 0) end
  return ct, cc, pt, pc
end

-- Rows of child whose reference finds no parent (the seeds' check_data_orphans.py), counted in
-- the database. db = { dsn = } for PostgreSQL or { sqlite = path }. Returns the count.
function C.orphans(db, rel)
  local ct, cc, pt, pc = C.parse_relation(rel)
  local sql = "SELECT count(*) AS n FROM " .. C.ident(ct) .. " c LEFT JOIN " .. C.ident(pt) .. " p ON c." ..
              C.ident(cc) .. " = p." .. C.ident(pc) .. " WHERE c." .. C.ident(cc) .. " IS NOT NULL AND p." ..
              C.ident(pc) .. " IS NULL"
  local rows = db.dsn and pg.query{ dsn = db.dsn, sql = sql } or sqlite.query{ db = db.sqlite, sql = sql }
  return tonumber(rows[1] and rows[1].n) or 0
end

-- The columns of a table ("\d table"), as { name = type }; nil when the table does not exist.
function C.columns(db, table_name)
  C.ident(table_name)
  local rows
  if db.dsn then
    rows = pg.query{ dsn = db.dsn, params = { table_name },
                     sql = "SELECT column_name AS name, data_type AS type FROM information_schema.columns " ..
                           "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position" }
  else
    rows = sqlite.query{ db = db.sqlite, sql = "SELECT name, type FROM pragma_table_info(?)", params = { table_name } }
  end
  if #rows == 0 then return nil end
  local cols = {}
  for _, r in ipairs(rows) do cols[r.name] = r.type end
  return cols
end

-- Checks a database after a rollback: each table exists (its columns logged), each relation
-- has no orphans, and for SQLite the declared foreign keys hold (PRAGMA foreign_key_check: SQLite
-- does not enforce them unless asked). Raises naming every problem; returns the column tables.
function C.check_schema(db, tables, relations)
  local problems, seen = {}, {}
  for _, t in ipairs(tables or {}) do
    local cols = C.columns(db, t)
    if not cols then
      problems[#problems + 1] = "table " .. t .. " does not exist"
    else
      seen[t] = cols
      local names = C.keys(cols)
      log.info(t .. ": " .. #names .. " columns (" .. table.concat(names, ", ") .. ")")
    end
  end
  for _, rel in ipairs(relations or {}) do
    local n = C.orphans(db, rel)
    log.info(rel .. ": " .. n .. " orphaned rows")
    if n > 0 then problems[#problems + 1] = n .. " rows of " .. rel .. " point at nothing" end
  end
  if db.sqlite then
    local bad = sqlite.query{ db = db.sqlite, sql = "SELECT * FROM pragma_foreign_key_check" }
    if #bad > 0 then
      problems[#problems + 1] = #bad .. " rows break a declared foreign key (first: " ..
                                tostring(bad[1].table) .. " row " .. tostring(bad[1].rowid) .. " → " .. tostring(bad[1].parent) .. ")"
    end
  end
  if #problems > 0 then error("schema check: " .. table.concat(problems, "; "), 0) end
  return seen
end

-- Services -------------------------------------------------------------------------------------

-- Declares a service from a runbook's params. `spec` holds the process-backend details
-- (argv, cwd, env, log, health); other backends only need the name their manager knows.
function C.service(backend, name, spec)
  local def = { name = name, backend = backend }
  if backend == "process" then
    for k, v in pairs(spec or {}) do def[k] = v end
  elseif spec and spec.health then
    def.health = spec.health
  end
  if spec and spec.unit then def.unit = spec.unit end
  service.define(def)
  return name
end

-- The TCP port of a URL on this machine (127.0.0.1, localhost, [::1]), or nil for another host:
-- what the process backend adopts by (`port =`) when the app was started by hand, the seeds' way
-- (`python app.py &`, `npm run dev &`), so stop finds it and start fails while it holds the port.
function C.url_port(url)
  if type(url) ~= "string" then return nil end
  local scheme, rest = url:match("^(https?)://([^/?#]*)")
  if not scheme then return nil end
  rest = rest:gsub("^.*@", "")
  local host, port = rest:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = rest:match("^([^:]+):?(%d*)$") end
  if host ~= "127.0.0.1" and host ~= "localhost" and host ~= "::1" then return nil end
  if port == nil or port == "" then return scheme == "https" and 443 or 80 end
  local n = tonumber(port)
  if not n or n < 1 or n > 65535 then return nil end
  return n
end

function C.stop_all(names)
  for i = #names, 1, -1 do service.stop(names[i]) end
end

function C.start_all(names)
  for _, n in ipairs(names) do service.start(n) end
end

-- HTTP checks (runbook.checks, runbook.monitor) ---------------------------------------------------

local function urls_of(list)
  local out = {}
  for _, u in ipairs(list or {}) do if not C.empty(u) then out[#out + 1] = u end end
  return out
end

-- Polls every URL until healthy (not `sleep 30` and hope); fails naming the first that is not.
function C.wait_healthy(urls, timeout)
  checks.wait_healthy{ urls = urls_of(urls), timeout = timeout or "60s" }
end

-- One GET per URL; returns the failing ones (and logs each answer with its time).
function C.check_endpoints(urls, headers)
  return checks.endpoints{ urls = urls_of(urls), headers = headers, timeout = "10s" }.failed
end

-- After a (re)start: every URL must come to answer below 400 within `timeout`.
function C.require_endpoints(urls, headers, timeout)
  checks.wait_endpoints{ urls = urls_of(urls), headers = headers, timeout = timeout or "30s", interval = "1s" }
end

-- Extended monitoring after a rollback: monitor.watch, plus the queue health of 002 §6.2
-- (waiting, active and failed jobs each sample; failures that keep growing stop it).
function C.monitor(o)
  if wait.seconds(o.duration, "monitor duration") <= 0 then return end
  local each
  if o.queue_stats then
    local queue_base
    each = function()
      local r = http.get{ url = o.queue_stats, headers = o.headers, check = false, timeout = "10s" }
      local counts = r.status == 200 and C.queue_counts(r.body) or nil
      if counts then
        local w, a, f = 0, 0, 0
        for _, c in pairs(counts) do w, a, f = w + c.waiting, a + c.active, f + c.failed end
        queue_base = queue_base or f
        log.info(string.format("queues: %d waiting, %d active, %d failed", w, a, f))
        if f - queue_base > (o.max_new_failed_jobs or 10) then
          error((f - queue_base) .. " jobs failed while monitoring (" .. o.queue_stats .. ")", 0)
        end
      else
        log.warn("queues: " .. o.queue_stats .. " → " .. tostring(r.status or r.error))
      end
    end
  end
  return monitor.watch{
    urls = o.urls, duration = o.duration, interval = o.interval, headers = o.headers,
    max_failures = o.max_failures, log_file = not C.empty(o.log_file) and o.log_file or nil,
    patterns = o.needles, max_new_errors = o.max_new_errors, log_must_grow = o.log_must_grow or nil,
    resources = o.resources or nil, disk_path = o.disk_path, max_disk_pct = o.max_disk_pct,
    min_memory_pct = o.min_memory_pct, each = each,
  }
end

-- Puts `paths` (files or directories, relative to the repository) back as they are at `ref`, as
-- a directory rollback is meant: `git checkout ref -- paths` overwrites but deletes nothing, so
-- the files the bad release added under them are removed too (fs.remove keeps each in the run's
-- artifacts). Returns the list of removed files.
function C.restore_paths(repo, ref, paths)
  local in_ref, removed = {}, {}
  local function has(path) return try(function() return git.rev_parse{ repo = repo, ref = ref .. ":" .. path } end) end
  for _, d in ipairs(paths) do
    if has(d) then
      in_ref[#in_ref + 1] = d
    elseif fs.exists(repo .. "/" .. d) then
      -- A path the good release does not have at all: it goes, whole.
      fs.remove(repo .. "/" .. d)
      removed[#removed + 1] = d
    end
  end
  if #in_ref > 0 then git.checkout{ repo = repo, ref = ref, paths = in_ref } end
  for _, f in ipairs(git.diff_names{ repo = repo, from = ref, to = "HEAD" }) do
    local under = false
    for _, d in ipairs(paths) do
      local prefix = tostring(d):gsub("/+$", "")
      if f == prefix or f:sub(1, #prefix + 1) == prefix .. "/" then under = true end
    end
    if under and not has(f) then
      if fs.exists(repo .. "/" .. f) then
        fs.remove(repo .. "/" .. f)
        removed[#removed + 1] = f
      end
    end
  end
  if #removed > 0 then log.info("removed what " .. ref .. " does not have: " .. table.concat(removed, ", ")) end
  return removed
end

-- Records -------------------------------------------------------------------------------------

-- Appends an entry to a text log (the sources' rollback log): files.append.
function C.append(path, text)
  files.append{ path = path, text = text }
end

-- The rollback metrics of source 004 (count, by cause, mean recovery time): metrics.record.
function C.record_metrics(path, entry)
  return metrics.record{ path = path, entry = entry }
end

-- Prints a filled-in template (notification, incident report) line by line into the run log.
function C.print_block(title, lines)
  notify.print{ title = title, lines = lines }
end

-- Notices (002 §7, 000 and 001's templates, 004's team notification) --------------------------

-- The params a runbook takes for its notices: C.with_notify{ ...its own params... } (runbook.notify).
C.NOTIFY_PARAMS = notify.PARAMS
C.with_notify = notify.with_params

-- 000's user communication after a successful rollback: printed, and mailed to notify_users_to.
function C.notice_users(p, fields)
  return notify.users{ params = p, fields = fields }.notice
end

-- Builds the notice `kind` (start, progress, finish, users, log_entry: stdlib/notice.lua) from
-- `fields` and delivers it where the params say; always prints it. Returns the notice.
function C.notice(p, kind, fields)
  return notify.send{ kind = kind, params = p, fields = fields }.notice
end

return C
