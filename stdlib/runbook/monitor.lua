-- runbook.monitor: extended monitoring after a rollback, the seeds' `watch -n 10 curl ...` loops
-- made bounded and journaled: every `interval` for `duration`, each URL's status and time, a
-- log's new error lines, optionally the machine's memory and disk and a check of your own; it
-- stops with an error naming what went wrong. Everything it reads is a primitive.
--
--   local monitor = require "runbook.monitor"
--   monitor.watch{ urls = { "http://127.0.0.1:8000/health" }, duration = "10m", interval = "30s",
--                  log_file = "/srv/app/logs/app.log", max_new_errors = 5 }
local util = require "runbook.util"
local checks = require "runbook.checks"

local M = {}

local RESOURCE_ARGS = {
  { name = "disk_path", type = "path", required = false, default = ".", doc = "a path on the file system to watch" },
  { name = "max_disk_pct", type = "number", required = false, default = 95, doc = "disk use (percent) that counts as a problem" },
  { name = "min_memory_pct", type = "number", required = false, default = 5, doc = "available memory (percent) below which it is a problem" },
}

M.__api = {
  module = "runbook.monitor",
  doc = "Monitoring loops after a rollback: samples URLs, a log's error lines, memory and disk every interval " ..
        "for a duration and stops with an error naming the first thing that went wrong. Bounded (it ends at " ..
        "`duration`), journaled (each sample is probes and a sleep), and in a dry-run one sample.",
  functions = {
    {
      name = "watch",
      call = "monitor.watch{ urls = { \"http://127.0.0.1:8000/health\" }, duration = \"10m\", interval = \"30s\" }",
      doc = "Samples every `interval` for `duration`: a GET of each URL (status and time logged), the new error " ..
            "lines of `log_file`, with `resources` memory and disk, and `each(sample)` if given. Raises when a URL " ..
            "fails `max_failures` samples in a row, the log gains more than `max_new_errors` lines, the disk or " ..
            "memory passes its limit, `each` raises, or (`log_must_grow`) the log was not written meanwhile. " ..
            "A dry-run takes one sample: nothing rolled back is there to watch yet.",
      args = {
        { name = "urls", type = "list of URLs", required = true, doc = "the URLs to sample" },
        { name = "duration", type = "duration", required = true, doc = "how long to watch (\"0s\": not at all)" },
        { name = "interval", type = "duration", required = false, default = "10s", doc = "between samples" },
        { name = "headers", type = "map", required = false, doc = "request headers for the URLs" },
        { name = "max_failures", type = "integer", required = false, default = 3, doc = "failed samples in a row of one URL that stop the watch" },
        { name = "log_file", type = "path", required = false, doc = "a log whose new error lines are counted" },
        { name = "patterns", type = "list of strings", required = false, default = { "ERROR" }, doc = "what an error line contains (case-insensitive)" },
        { name = "max_new_errors", type = "integer", required = false, default = 10, doc = "new error lines that stop the watch (more than this)" },
        { name = "log_must_grow", type = "boolean", required = false, default = false, doc = "the log must have been written while watching (an app that stopped logging is not healthy)" },
        { name = "resources", type = "boolean", required = false, default = false, doc = "also sample memory and disk (monitor.resources)" },
        RESOURCE_ARGS[1], RESOURCE_ARGS[2], RESOURCE_ARGS[3],
        { name = "each", type = "function", required = false, doc = "function(sample) called after each sample's URLs and log, with { n, statuses = { [url] = status }, new_errors }; raise in it to stop the watch" },
      },
      returns = "{ samples, seconds, new_errors, failures = { [url] = failed samples }, log_growth }",
      results = {
        { name = "samples", type = "integer", doc = "samples taken" },
        { name = "seconds", type = "number", doc = "how long it watched" },
        { name = "new_errors", type = "integer", doc = "error lines the log gained" },
        { name = "failures", type = "map", doc = "URL -> samples it failed in all" },
        { name = "log_growth", type = "integer", doc = "bytes the log grew by (with log_must_grow), or nil" },
      },
    },
    {
      name = "resources",
      call = "monitor.resources{ disk_path = \"/srv/app\", max_disk_pct = 90 }",
      doc = "One sample of the machine (002 §6.2's free -h and df -h): available memory from /proc/meminfo and " ..
            "the use of the disk holding `disk_path`, logged, with the problems they pass. Never raises for the " ..
            "machine's state: look at `ok` and `problems`.",
      args = RESOURCE_ARGS,
      returns = "{ ok, problems, memory_available_pct, memory_available_mib, disk_used_pct }",
      results = {
        { name = "ok", type = "boolean", doc = "no limit passed" },
        { name = "problems", type = "list", doc = "each limit passed, in words" },
        { name = "memory_available_pct", type = "number", doc = "available memory, percent of total" },
        { name = "memory_available_mib", type = "integer", doc = "available memory, MiB" },
        { name = "disk_used_pct", type = "number", doc = "disk use, percent" },
      },
    },
  },
}

local spec = util._specs(M.__api)

function M.resources(args)
  local a = util.check_args{ call = "monitor.resources", args = args or {}, spec = spec.resources }
  local mem = fs.read("/proc/meminfo")
  local total_kb = tonumber(mem:match("MemTotal:%s*(%d+)")) or 0
  local avail_kb = tonumber(mem:match("MemAvailable:%s*(%d+)")) or 0
  local df = fs.disk_free(a.disk_path)
  local avail_pct = total_kb > 0 and 100 * avail_kb / total_kb or 100
  log.info(string.format("resources: memory %.0f%% available (%d MiB), disk %.0f%% used", avail_pct,
                         avail_kb // 1024, df.used_percent))
  local problems = {}
  if df.used_percent >= a.max_disk_pct then
    problems[#problems + 1] = string.format("disk %.0f%% used (limit %d%%)", df.used_percent, math.floor(a.max_disk_pct))
  end
  if avail_pct < a.min_memory_pct then
    problems[#problems + 1] = string.format("only %.0f%% of memory available", avail_pct)
  end
  return { ok = #problems == 0, problems = problems, memory_available_pct = avail_pct,
           memory_available_mib = avail_kb // 1024, disk_used_pct = df.used_percent }
end

function M.watch(args)
  local a = util.check_args{ call = "monitor.watch", args = args, spec = spec.watch }
  local total = util.seconds{ duration = a.duration, call = "monitor.watch", name = "duration" }
  local every = util.seconds{ duration = a.interval, call = "monitor.watch", name = "interval" }
  if total > 0 and every <= 0 then
    error("monitor.watch: bad argument 'interval' (a duration above 0 expected, got " .. tostring(a.interval) .. ")", 2)
  end
  if total <= 0 then return { samples = 0, seconds = 0, new_errors = 0, failures = {} } end
  local function errors()
    if a.log_file == nil or a.log_file == "" then return 0 end
    return checks.log_errors{ path = a.log_file, patterns = a.patterns, max = 0 }.count
  end
  local function log_size()
    if a.log_file == nil or a.log_file == "" or not fs.exists(a.log_file) then return nil end
    return tonumber(fs.stat(a.log_file).size) or 0
  end
  local base, start, streak, failures, samples = errors(), time.now(), {}, {}, 0
  local size0 = a.log_must_grow and log_size() or nil
  local new
  while true do
    samples = samples + 1
    local statuses = {}
    for _, u in ipairs(a.urls) do
      local r = http.get{ url = u, headers = a.headers, check = false, timeout = "10s" }
      local ok = checks._answered(r)
      statuses[u] = r.status or 0
      streak[u] = ok and 0 or (streak[u] or 0) + 1
      if not ok then failures[u] = (failures[u] or 0) + 1 end
      log.info(string.format("%s %s %s ms", u, tostring(r.status or r.error), tostring(r.elapsed_ms or "-")))
      if streak[u] >= a.max_failures then
        error(u .. " failed " .. streak[u] .. " samples in a row", 0)
      end
    end
    new = errors() - base
    if new > a.max_new_errors then
      error(new .. " new error lines in " .. a.log_file .. " while monitoring", 0)
    end
    if a.each then a.each({ n = samples, statuses = statuses, new_errors = new }) end
    if a.resources then
      local res = M.resources{ disk_path = a.disk_path, max_disk_pct = a.max_disk_pct, min_memory_pct = a.min_memory_pct }
      if not res.ok then error(res.problems[1] .. " while monitoring", 0) end
    end
    local left = total - (time.now() - start)
    if run.dry_run or left <= 0 then break end
    sleep(math.min(every, left))
  end
  local took = time.now() - start
  log.info(string.format("monitored %d samples over %.0fs", samples, took))
  local growth
  if a.log_must_grow and not run.dry_run then
    local size1 = log_size()
    if not size0 or not size1 or size1 <= size0 then
      error((a.log_file or "the log") .. " was not written while monitoring (" .. tostring(size0) .. " → " ..
            tostring(size1) .. " bytes)", 0)
    end
    growth = size1 - size0
    log.info(string.format("%s grew by %d bytes while monitoring", a.log_file, growth))
  end
  return { samples = samples, seconds = took, new_errors = new, failures = failures, log_growth = growth }
end

return M
