-- runbook.metrics: the rollback metrics of seed 004 (how many rollbacks, by cause, the mean
-- recovery time) kept as a JSON file beside your other records, one entry per rollback. Reads
-- and writes are fs.* primitives: the previous file is kept as an artifact of the run.
--
--   local metrics = require "runbook.metrics"
--   local s = metrics.record{ path = "/srv/app/rollback-metrics.json",
--                             entry = { cause = "failed migration", recovery_time_minutes = 12 } }
--   log.info(s.total_rollbacks .. " rollbacks, " .. s.average_recovery_time .. " min on average")
local util = require "runbook.util"

local M = {}

local PATH = { name = "path", type = "path", required = true, doc = "the metrics file (JSON), e.g. /srv/app/rollback-metrics.json" }

M.__api = {
  module = "runbook.metrics",
  doc = "Rollback metrics (seed 004): a JSON file of { rollbacks = { entries }, statistics = { total_rollbacks, " ..
        "by_cause, average_recovery_time } }, one entry appended per rollback and the statistics recomputed. " ..
        "Written with fs.write (atomic; the previous file kept as an artifact).",
  functions = {
    {
      name = "record",
      call = "metrics.record{ path = \"/srv/app/rollback-metrics.json\", entry = { cause = \"bad deploy\", recovery_time_minutes = 12 } }",
      doc = "Appends `entry` to the file's rollbacks (creating the file and its directory when missing), " ..
            "recomputes the statistics and writes it back. A file that is not JSON is started afresh (the old " ..
            "one stays in the run's artifacts). `entry` is yours: `cause` and `recovery_time_minutes` feed the " ..
            "statistics.",
      args = {
        PATH,
        { name = "entry", type = "map", required = true,
          doc = "what to record: { cause = \"...\", recovery_time_minutes = 12, level = ..., ... }",
          check = function(e)
            if e.recovery_time_minutes ~= nil and type(e.recovery_time_minutes) ~= "number" then
              return false, "entry.recovery_time_minutes must be a number of minutes, got " .. util._got(e.recovery_time_minutes)
            end
            if e.cause ~= nil and type(e.cause) ~= "string" then
              return false, "entry.cause must be a string, got " .. util._got(e.cause)
            end
            return true
          end },
      },
      returns = "the statistics: { total_rollbacks, by_cause = { [cause] = n }, average_recovery_time (minutes) }",
      results = {
        { name = "total_rollbacks", type = "integer", doc = "entries in the file" },
        { name = "by_cause", type = "map", doc = "cause -> rollbacks (\"unknown\" for an entry without one)" },
        { name = "average_recovery_time", type = "number", doc = "mean recovery_time_minutes" },
      },
    },
    {
      name = "read",
      call = "metrics.read{ path = \"/srv/app/rollback-metrics.json\" }",
      doc = "The metrics file as a table, with its statistics recomputed from the entries; empty (no " ..
            "rollbacks) when the file is missing, empty or not JSON. Changes nothing.",
      args = { PATH },
      returns = "{ rollbacks = { entries }, statistics = { total_rollbacks, by_cause, average_recovery_time } }",
      results = {
        { name = "rollbacks", type = "list", doc = "the entries, oldest first" },
        { name = "statistics", type = "map", doc = "{ total_rollbacks, by_cause, average_recovery_time }" },
      },
    },
  },
}

local spec = util._specs(M.__api)

local function statistics(rollbacks)
  local by_cause, total_time = {}, 0
  for _, r in ipairs(rollbacks) do
    local cause = type(r) == "table" and type(r.cause) == "string" and r.cause or "unknown"
    by_cause[cause] = (by_cause[cause] or 0) + 1
    total_time = total_time + (type(r) == "table" and tonumber(r.recovery_time_minutes) or 0)
  end
  return { total_rollbacks = #rollbacks, by_cause = by_cause,
           average_recovery_time = #rollbacks > 0 and total_time / #rollbacks or 0 }
end

local function load(path)
  local m = { rollbacks = {} }
  if fs.exists(path) then
    local text = fs.read(path)
    if text ~= "" then
      local ok, decoded = pcall(json.decode, text)
      if ok and type(decoded) == "table" then m = decoded end
    end
  end
  if type(m.rollbacks) ~= "table" then m.rollbacks = {} end
  return m
end

function M.read(args)
  local a = util.check_args{ call = "metrics.read", args = args, spec = spec.read }
  local m = load(a.path)
  return { rollbacks = m.rollbacks, statistics = statistics(m.rollbacks) }
end

function M.record(args)
  local a = util.check_args{ call = "metrics.record", args = args, spec = spec.record }
  local m = load(a.path)
  m.rollbacks[#m.rollbacks + 1] = a.entry
  m.statistics = statistics(m.rollbacks)
  local dir = a.path:match("^(.*)/[^/]+$") or "."
  fs.mkdir(dir == "" and "/" or dir)
  fs.write(a.path, json.encode(m, true) .. "\n")
  return m.statistics
end

return M
