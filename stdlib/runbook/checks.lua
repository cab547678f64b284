-- runbook.checks: is the application answering? One GET per endpoint, waiting until endpoints
-- answer (polling, never a fixed sleep), and counting error lines in a log. Every request and
-- read is a primitive (http.get, http.wait_healthy, fs.grep), so it is journaled, redacted and,
-- in a dry-run, a probe.
--
--   local checks = require "runbook.checks"
--   local r = checks.endpoints{ urls = { "http://127.0.0.1:8000/health" } }
--   if not r.ok then error("not answering: " .. table.concat(r.failed, ", ")) end
local util = require "runbook.util"

local M = {}

local URLS = { name = "urls", type = "list of URLs", required = true, doc = "the URLs, e.g. { \"http://127.0.0.1:8000/health\" }" }
local HEADERS = { name = "headers", type = "map", required = false, doc = "request headers { Authorization = \"Bearer ...\" } (redacted when they name a secret)" }
local EXPECT = {
  name = "expect", type = "any", required = false,
  doc = "the status (or list of statuses) that counts as answering; default: any status below 400",
  check = function(v)
    if math.type(v) == "integer" then return true end
    if type(v) == "table" and #v > 0 then
      for _, s in ipairs(v) do if math.type(s) ~= "integer" then return false, "status or list of statuses expected" end end
      return true
    end
    return false, "status or list of statuses expected, got " .. util._got(v)
  end,
}

M.__api = {
  module = "runbook.checks",
  doc = "Endpoint checks: one GET per URL with its status and time, waiting until URLs answer (polling, not " ..
        "sleeping), and error lines counted in a log. Each request is an http.* probe and each read an fs.* probe: " ..
        "journaled, redacted, run in a dry-run.",
  functions = {
    {
      name = "endpoints",
      call = "checks.endpoints{ urls = { \"http://127.0.0.1:8000/health\" } }",
      doc = "One GET per URL (never raises for the server's state): logs each answer with its time, or the " ..
            "failure as a warning, and returns which URLs did not answer.",
      args = {
        URLS, HEADERS, EXPECT,
        { name = "timeout", type = "duration", required = false, default = "10s", doc = "for each request" },
      },
      returns = "{ ok, failed = { urls }, passed, results = { { url, status, ok, elapsed_ms, error } } }",
      results = {
        { name = "ok", type = "boolean", doc = "true when every URL answered" },
        { name = "failed", type = "list", doc = "the URLs that did not answer, in the order given" },
        { name = "passed", type = "integer", doc = "how many URLs answered" },
        { name = "results", type = "list", doc = "per URL: { url, status, ok, elapsed_ms, error }" },
      },
    },
    {
      name = "wait_healthy",
      call = "checks.wait_healthy{ urls = { \"http://127.0.0.1:8000/health\" }, timeout = \"60s\" }",
      doc = "Polls each URL with http.wait_healthy (backoff) until it answers the expected status (200 unless " ..
            "`expect`); raises naming the first URL that does not within `timeout`. In a dry-run it looks once.",
      args = {
        URLS,
        { name = "timeout", type = "duration", required = false, default = "60s", doc = "for each URL" },
        EXPECT,
        { name = "body_contains", type = "string", required = false, doc = "the body must contain this text" },
      },
      returns = "{ results = { { url, status, attempts, waited } } }",
      results = {
        { name = "results", type = "list", doc = "per URL: { url, status, attempts, waited (ms) }" },
      },
    },
    {
      name = "wait_endpoints",
      call = "checks.wait_endpoints{ urls = { \"http://127.0.0.1:8000/api/users\" }, headers = { Authorization = token } }",
      doc = "After a (re)start: waits until every URL answers below 400 (or `expect`), one GET per poll with the " ..
            "headers given; raises naming the URL that did not within `timeout`. A wait, not a one-shot check: in a " ..
            "dry-run, where the restart was only planned, it looks once and goes on.",
      args = {
        URLS, HEADERS, EXPECT,
        { name = "timeout", type = "duration", required = false, default = "30s", doc = "for each URL" },
        { name = "interval", type = "duration", required = false, default = "1s", doc = "first pause between polls (grows by half, at most 10s)" },
      },
      returns = "{ results = { { url, status, elapsed_ms } } }",
      results = {
        { name = "results", type = "list", doc = "per URL: { url, status, elapsed_ms } of the answer that counted" },
      },
    },
    {
      name = "log_errors",
      call = "checks.log_errors{ path = \"/srv/app/logs/app.log\", patterns = { \"ERROR\", \"Traceback\" } }",
      doc = "Counts the lines of a log (of any size, read in chunks by fs.grep) that contain any of `patterns`, " ..
            "case-insensitively, and keeps the last `max` of them. A log that does not exist (rotated away) counts 0.",
      args = {
        { name = "path", type = "path", required = true, doc = "the log file" },
        { name = "patterns", type = "list of strings", required = false, default = { "ERROR" }, doc = "fixed strings, not patterns" },
        { name = "max", type = "integer", required = false, default = 20, doc = "how many of the last matching lines to return (0 to 10000)" },
        { name = "since", type = "string", required = false, doc = "only lines stamped at or after this: \"15m\" back, or an ISO time" },
      },
      returns = "{ exists, count, lines }",
      results = {
        { name = "exists", type = "boolean", doc = "whether the log exists" },
        { name = "count", type = "integer", doc = "matching lines" },
        { name = "lines", type = "list", doc = "the last `max` matching lines" },
      },
    },
  },
}

local spec = util._specs(M.__api)

-- Whether an answer counts: no transport failure, and `expect` (or any status below 400).
local function answered(r, expect)
  if r.ok == false then return false end
  local s = r.status or 0
  if expect == nil then return s > 0 and s < 400 end
  if type(expect) == "table" then
    for _, e in ipairs(expect) do if s == e then return true end end
    return false
  end
  return s == expect
end
M._answered = answered

function M.endpoints(args)
  local a = util.check_args{ call = "checks.endpoints", args = args, spec = spec.endpoints }
  local failed, results = {}, {}
  for _, u in ipairs(a.urls) do
    local r = http.get{ url = u, headers = a.headers, check = false, timeout = a.timeout }
    local ok = answered(r, a.expect)
    results[#results + 1] = { url = u, status = r.status, ok = ok, elapsed_ms = r.elapsed_ms, error = r.error }
    if ok then
      log.info(u .. " -> " .. tostring(r.status) .. " in " .. tostring(r.elapsed_ms or "?") .. " ms")
    else
      failed[#failed + 1] = u
      log.warn(u .. " -> " .. tostring(r.status or r.error))
    end
  end
  return { ok = #failed == 0, failed = failed, passed = #results - #failed, results = results }
end

function M.wait_healthy(args)
  local a = util.check_args{ call = "checks.wait_healthy", args = args, spec = spec.wait_healthy }
  local results = {}
  for _, u in ipairs(a.urls) do
    local r = http.wait_healthy{ url = u, timeout = a.timeout, expect = a.expect, body_contains = a.body_contains }
    results[#results + 1] = { url = u, status = r.status, attempts = r.attempts, waited = r.waited }
  end
  return { results = results }
end

function M.wait_endpoints(args)
  local a = util.check_args{ call = "checks.wait_endpoints", args = args, spec = spec.wait_endpoints }
  local results = {}
  for _, u in ipairs(a.urls) do
    local last
    wait["until"](function()
      local r = http.get{ url = u, headers = a.headers, check = false, timeout = "10s" }
      last = r
      return answered(r, a.expect)
    end, { timeout = a.timeout, interval = a.interval, what = u .. " to answer" })
    results[#results + 1] = { url = u, status = last and last.status, elapsed_ms = last and last.elapsed_ms }
  end
  return { results = results }
end

function M.log_errors(args)
  local a = util.check_args{ call = "checks.log_errors", args = args, spec = spec.log_errors }
  if a.max < 0 or a.max > 10000 then
    error("checks.log_errors: bad argument 'max' (integer 0 to 10000 expected, got " .. a.max .. ")", 2)
  end
  if not fs.exists(a.path) then return { exists = false, count = 0, lines = {} } end
  local g = fs.grep{ path = a.path, patterns = a.patterns, max = a.max, ignore_case = true, since = a.since }
  return { exists = true, count = g.count, lines = g.lines }
end

return M
