-- notice: the rollback notices of the seed procedures, filled from the run.
--
--   local notice = require "notice"
--   local n = notice.start{ issue = "checkout fails with 500", severity = "P1", eta = "20m" }
--   notice.send(n, { webhook = p.notify_webhook, format = "slack" })
--
-- Each builder returns { kind, subject, text, json } and changes nothing; notice.send delivers
-- one through notify.webhook and/or notify.email (changes: planned in a dry-run, sent once
-- live). The builders read `run` (name, step, steps, started) and the clock (time.now, which is
-- journaled), so a replay renders the same text.
--
--   start     002 §7.1 "[ACTION] Initiating Rollback" (+ the §7.2 Slack/Teams message)
--   progress  002 §7.1 "[UPDATE] Rollback in Progress - X% Complete": percent from the steps
--             done, ETA from the time they took (or `eta` before any is done)
--   finish    002 §7.1 "[RESOLVED] Rollback Complete" / a failed end; 001's internal template
--             fields (ISSUE / IMPACT / ACTION / STATUS / NEXT STEPS)
--   users     000's user communication ("Brief Service Interruption Resolved")
--   log_entry 001's rollback log entry ("[TIMESTAMP] ROLLBACK INITIATED ...")
--
-- Fields (all optional): issue, severity, impact, action, status, latest, by, eta (a duration),
-- product, dashboard, logs, next (a list), error_rate (percent), response_ms, feature, method,
-- trigger, verification, affected, outcome ("succeeded" / "failed", finish), monitor_for.
local M = {}

local function seconds(d)
  if d == nil or d == "" then return nil end
  if type(d) == "number" then return d end
  return wait.seconds(d, "notice: eta")
end

local function stamp(t) return time.format(t, "%Y-%m-%d %H:%M:%S UTC") end

local function minutes(s)
  if s < 60 then return string.format("%d seconds", math.floor(s + 0.5)) end
  local m = math.floor(s / 60 + 0.5)
  return m == 1 and "1 minute" or (m .. " minutes")
end

local function or_dash(v) if v == nil or v == "" then return "-" end return tostring(v) end

local function lines(t)
  local out = {}
  for _, l in ipairs(t) do if l ~= false and l ~= nil then out[#out + 1] = l end end
  return table.concat(out, "\n")
end

local function who(o) return o.by or ("runbook " .. (run.name or "?") .. " run #" .. tostring(run.id)) end

-- Where the run is: steps done before the current one, the total, percent, elapsed seconds and
-- the ETA in seconds (nil when nothing is done yet and no `eta` was given).
function M.progress_of(o)
  o = o or {}
  local total = math.max(1, tonumber(run.steps) or 1)
  local done = math.max(0, math.min(total, (tonumber(o.done) or ((tonumber(run.step) or 1) - 1))))
  local now = o.now or time.now()
  local elapsed = math.max(0, now - (run.started or now))
  local eta
  if done > 0 then
    eta = elapsed / done * (total - done)
  else
    eta = seconds(o.eta)
  end
  return { done = done, total = total, percent = math.floor(100 * done / total), elapsed = elapsed,
           eta = eta, step = run.step_name or "" }
end

local function chat(o, title, body)
  local text = title .. "\n\n" .. body
  return { text = text }
end

function M.start(o)
  o = o or {}
  local now = o.now or time.now()
  local subject = "[ACTION] Initiating Rollback - " .. or_dash(o.issue)
  local eta = seconds(o.eta)
  local text = lines{
    "We are initiating a rollback due to " .. or_dash(o.issue) .. ".",
    "",
    "Issue Detected: " .. (o.detected and stamp(o.detected) or stamp(now)),
    "Severity: " .. or_dash(o.severity),
    "Impact: " .. or_dash(o.impact),
    "Expected Rollback Duration: " .. (eta and minutes(eta) or "-"),
    "Procedure: " .. (run.name or "?") .. " " .. (run.version or "") .. " (run #" .. tostring(run.id) .. ", " .. (run.mode or "") .. ")",
    "",
    "We will provide updates every " .. (o.every or "15 minutes") .. ".",
    "",
    "- " .. who(o),
  }
  local slack = lines{
    "🚨 ROLLBACK IN PROGRESS 🚨",
    subject,
    "",
    "Issue: " .. or_dash(o.issue),
    "Severity: " .. or_dash(o.severity),
    "Started: " .. stamp(run.started or now),
    "ETA: " .. (eta and minutes(eta) or "-"),
    "",
    "Status: " .. or_dash(o.status or "starting " .. (run.name or "the rollback")),
    "Procedure: " .. (run.name or "?") .. " " .. (run.version or "") .. " (run #" .. tostring(run.id) .. ", " .. (run.mode or "") .. ")",
    o.dashboard and ("Dashboard: " .. o.dashboard) or false,
    o.logs and ("Logs: " .. o.logs) or false,
  }
  return { kind = "start", subject = subject, text = text, chat = slack, json = chat(o, subject, text) }
end

function M.progress(o)
  o = o or {}
  local pr = M.progress_of(o)
  local subject = "[UPDATE] Rollback in Progress - " .. pr.percent .. "% Complete"
  local text = lines{
    "Rollback Status: " .. pr.percent .. "% complete (" .. pr.done .. " of " .. pr.total .. " steps, " .. minutes(pr.elapsed) .. " so far)",
    "Current Step: " .. or_dash(o.step or pr.step),
    "ETA: " .. (pr.eta and minutes(pr.eta) or "-"),
    "",
    "Latest: " .. or_dash(o.latest or o.status),
    "",
    "- " .. who(o),
  }
  local slack = "🚨 " .. subject .. "\n\n" .. text
    .. (o.dashboard and ("\nDashboard: " .. o.dashboard) or "") .. (o.logs and ("\nLogs: " .. o.logs) or "")
  return { kind = "progress", subject = subject, text = text, chat = slack, json = chat(o, subject, text),
           percent = pr.percent, eta = pr.eta }
end

function M.finish(o)
  o = o or {}
  local now = o.now or time.now()
  local ok = (o.outcome or "succeeded") == "succeeded"
  local took = math.max(0, now - (run.started or now))
  local subject = ok and "[RESOLVED] Rollback Complete - Service Restored"
                     or ("[FAILED] Rollback did not complete - " .. or_dash(o.issue))
  local next_steps = o.next or (ok and { "Continue monitoring for " .. (o.monitor_for or "2 hours"),
                                         "Root cause analysis and post-mortem within 24 hours" }
                                   or { "The on-call engineer is on it; the run's report: runbook report " .. tostring(run.id) })
  local nl = {}
  for _, s in ipairs(next_steps) do nl[#nl + 1] = "- " .. s end
  local text = lines{
    ok and ("Rollback completed successfully at " .. stamp(now) .. ".")
       or ("The rollback stopped at " .. stamp(now) .. ": " .. or_dash(o.status)),
    "",
    "ISSUE: " .. or_dash(o.issue),
    "IMPACT: " .. or_dash(o.impact),
    "ACTION: " .. or_dash(o.action or ("rolled back with " .. (run.name or "runbook"))),
    "STATUS: " .. (ok and "✅ Healthy" or "❌ " .. or_dash(o.status)),
    o.error_rate and ("Error Rate: " .. o.error_rate .. "%") or false,
    o.response_ms and ("Response Time: " .. o.response_ms .. "ms") or false,
    "Duration: " .. minutes(took),
    "Affected Users: " .. or_dash(o.affected),
    "",
    "NEXT STEPS:",
    table.concat(nl, "\n"),
    "",
    "- " .. who(o),
  }
  return { kind = "finish", subject = subject, text = text, chat = (ok and "✅ " or "❌ ") .. subject .. "\n\n" .. text,
           json = chat(o, subject, text), ok = ok }
end

function M.users(o)
  o = o or {}
  local now = o.now or time.now()
  local product = o.product or "Our service"
  local took = math.max(0, now - (run.started or now))
  local subject = product .. " - Brief Service Interruption Resolved"
  local text = lines{
    "Dear " .. (o.audience or (product .. " Users")) .. ",",
    "",
    "We experienced a brief service interruption due to " .. (o.cause or "a backend update") .. ".",
    "The issue has been resolved and all services are now operating normally.",
    "",
    "Duration: " .. (o.duration and minutes(seconds(o.duration)) or minutes(took)),
    "Impact: " .. or_dash(o.impact),
    "Resolution: " .. (o.resolution or "Rollback to previous stable version"),
    "",
    "We apologize for any inconvenience.",
    "",
    "- " .. (o.team or (product .. " Team")),
  }
  return { kind = "users", subject = subject, text = text, chat = text, json = chat(o, subject, text) }
end

function M.log_entry(o)
  o = o or {}
  local now = o.now or time.now()
  local took = math.max(0, now - (run.started or now))
  local text = lines{
    "[" .. stamp(run.started or now) .. "] ROLLBACK INITIATED",
    "Feature: " .. or_dash(o.feature),
    "Trigger: " .. or_dash(o.trigger or o.issue),
    "Method: " .. or_dash(o.method),
    "Duration: " .. minutes(took),
    "Verification: " .. or_dash(o.verification),
  }
  return { kind = "log", subject = "Rollback log entry", text = text, chat = text, json = { text = text } }
end

-- Delivers `n` (a notice above, or { subject =, text = }) to what `to` names, each only when set:
--   to.webhook (+ to.format "slack" | "teams" | "generic")       notify.webhook
--   to.smtp, to.from, to.to (+ to.username, to.password, to.tls) notify.email
-- With to.best_effort = true a failed delivery is logged as a warning and the run goes on (a
-- rollback must not stop because the chat is down); otherwise it raises. Returns the number sent.
function M.send(n, to)
  if type(n) ~= "table" or type(n.text) ~= "string" then error("notice.send: a notice expected", 2) end
  to = to or {}
  local sent = 0
  local function try(what, fn)
    if to.best_effort then
      local ok, err = pcall(fn)
      if ok then sent = sent + 1 else log.warn("notice not sent by " .. what .. ": " .. tostring(err)) end
    else
      fn()
      sent = sent + 1
    end
  end
  if to.webhook and to.webhook ~= "" then
    try("webhook", function()
      notify.webhook{ url = to.webhook, text = n.chat or n.text, format = to.format or "generic",
                      headers = to.headers }
    end)
  end
  local rcpt = to.to
  if type(rcpt) == "table" and #rcpt == 0 then rcpt = nil end
  if rcpt == "" then rcpt = nil end
  if to.smtp and to.smtp ~= "" and rcpt then
    try("mail", function()
      notify.email{ smtp = to.smtp, from = to.from or "runbook@localhost", to = rcpt,
                    subject = n.subject or "runbook", body = n.text, username = to.username,
                    password = to.password, tls = to.tls }
    end)
  end
  return sent
end

return M
