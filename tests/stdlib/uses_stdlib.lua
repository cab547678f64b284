-- A runbook that calls the stdlib modules (tests/stdlib/*_test.lua run it with fakes): the
-- param `what` chooses the call, its result is logged as JSON ("result: {...}").
local checks = require "runbook.checks"
local monitor = require "runbook.monitor"
local metrics = require "runbook.metrics"
local files = require "runbook.files"
local notify = require "runbook.notify"

runbook {
  name = "uses-stdlib",
  version = "1.0.0",
  params = notify.with_params{
    what = { type = "string", doc = "which call" },
    url = { type = "string", default = "http://127.0.0.1:8000" },
    path = { type = "string", default = "/srv/app/file" },
  },
}

local function show(r) log.info("result: " .. json.encode(r)) end

local calls = {
  endpoints = function(p)
    show(checks.endpoints{ urls = { p.url .. "/ok", p.url .. "/bad" } })
  end,
  wait_endpoints = function(p)
    show(checks.wait_endpoints{ urls = { p.url .. "/ok" }, timeout = "1m", interval = "1s" })
  end,
  wait_healthy = function(p)
    show(checks.wait_healthy{ urls = { p.url .. "/health" }, timeout = "5s" })
  end,
  log_errors = function(p)
    show(checks.log_errors{ path = p.path, patterns = { "ERROR", "Traceback" }, max = 2 })
  end,
  watch = function(p)
    show(monitor.watch{ urls = { p.url .. "/health" }, duration = "30s", interval = "10s", log_file = p.path,
                        max_new_errors = 3 })
  end,
  watch_each = function(p)
    monitor.watch{ urls = { p.url .. "/health" }, duration = "30s", interval = "10s",
                   each = function(s) if s.n == 2 then error("queue backlog at sample " .. s.n, 0) end end }
  end,
  resources = function(p)
    show(monitor.resources{ disk_path = p.path, max_disk_pct = 90 })
  end,
  record = function(p)
    show(metrics.record{ path = p.path, entry = { cause = "bad deploy", recovery_time_minutes = 12 } })
  end,
  read = function(p)
    show(metrics.read{ path = p.path })
  end,
  append = function(p)
    show(files.append{ path = p.path, text = "rolled back" })
  end,
  set_env = function(p)
    show(files.set_env{ path = p.path, key = "ROLLBACK_MODE", value = "true" })
  end,
  send = function(p)
    local r = notify.send{ kind = "start", params = p, fields = { issue = "checkout answers 500", severity = "P1" } }
    show({ subject = r.subject, sent = r.sent })
  end,
  users = function(p)
    local r = notify.users{ params = p, fields = { product = "SizeWise" } }
    show({ subject = r.subject, sent = r.sent })
  end,
}

step("call", function(p)
  local fn = calls[p.what]
  if not fn then error("no call " .. tostring(p.what)) end
  fn(p)
end)
