-- runbook.notify: telling people, as the seed procedures' communication plans do: 002 §7's start,
-- progress and end notices (and its Slack/Teams message), 000's mail to the team and to users,
-- 001's internal template and rollback log entry. The texts are stdlib/notice.lua's templates,
-- filled from the run; delivery is notify.webhook (Slack, Teams, any JSON receiver) and
-- notify.email (SMTP): changes, planned in a dry-run, sent once live, never again on a replay.
-- Every notice is also printed into the run's log, so it is in the journal with the run.
--
--   local notify = require "runbook.notify"   -- it carries notify.webhook / notify.email too
--   runbook { name = "x", version = "1", params = notify.with_params{ app = { type = "string" } } }
--   step("Start", function(p) notify.send{ kind = "start", params = p, fields = { issue = p.issue } } end)
local util = require "runbook.util"

local M = {}

-- The primitive module, kept before anything could shadow it (a runbook's global `notify = M`).
local PRIM = rawget(_G, "notify")
local function primitive(fn)
  local p = PRIM or rawget(_G, "notify")
  if type(p) ~= "table" or p == M or type(p[fn]) ~= "function" then
    error("notify." .. fn .. ": the notify primitives are not available here", 3)
  end
  return p[fn]
end
function M.webhook(...) return primitive("webhook")(...) end
function M.email(...) return primitive("email")(...) end

local KINDS = { start = true, progress = true, finish = true, users = true, log_entry = true }

-- The params a runbook takes for its notices (notify.with_params{ ...its own... } adds them).
M.PARAMS = {
  notify_webhook = { type = "string", secret = true, default = "",
                     doc = "Slack, Teams or generic webhook URL for the start, progress and end notices ('' sends none; a secret: its path is the token)" },
  notify_format = { type = "string", default = "slack", choices = { "slack", "teams", "generic" },
                    doc = "how the webhook message is wrapped" },
  notify_smtp = { type = "string", default = "", doc = "smtp://host:port to mail the notices ('' mails none)" },
  notify_from = { type = "string", default = "runbook@localhost", doc = "sender of mailed notices" },
  notify_to = { type = "list", default = "", doc = "recipients of mailed notices (team@example.com,oncall@example.com)" },
  notify_smtp_user = { type = "string", default = "", doc = "SMTP AUTH user" },
  notify_smtp_password = { type = "string", secret = true, default = "", doc = "SMTP AUTH password" },
  notify_users_to = { type = "list", default = "",
                      doc = "who gets the user communication (000's \"Brief Service Interruption Resolved\") after a successful rollback ('' : nobody; it is still printed)" },
  issue = { type = "string", default = "", doc = "what went wrong, in one line: the notices say it" },
  impact = { type = "string", default = "", doc = "who or what is affected, for the notices" },
  notify_strict = { type = "bool", default = false,
                    doc = "a notice that cannot be delivered fails the step (default: a warning, the rollback goes on)" },
}

local KIND = {
  name = "kind", type = "string", required = true,
  doc = "start, progress, finish, users or log_entry (the templates of stdlib/notice.lua)",
  check = function(k)
    if KINDS[k] then return true end
    return false, "start, progress, finish, users or log_entry expected, got '" .. k:sub(1, 40) .. "'"
  end,
}
local FIELDS = { name = "fields", type = "map", required = false,
                 doc = "what the template says: issue, severity, impact, status, latest, eta, outcome, next, product, ... (stdlib/notice.lua)" }
local PARAMS_ARG = { name = "params", type = "map", required = false,
                     doc = "the run's params (p): the notify_* params of notify.with_params say where it goes" }
local SENT = {
  { name = "notice", type = "map", doc = "the notice: { kind, subject, text, chat }" },
  { name = "subject", type = "string", doc = "its subject line" },
  { name = "text", type = "string", doc = "its text" },
  { name = "sent", type = "integer", doc = "deliveries made (webhook and mail; 0 when none is configured)" },
}

local function opt(name, ty, doc) return { name = name, type = ty, required = false, doc = doc } end

M.__api = {
  module = "runbook.notify",
  doc = "Notices of a rollback (the seeds' start, progress and end notices, 000's user mail, 001's log entry), " ..
        "printed into the run's log and delivered by notify.webhook and notify.email where the params say. " ..
        "`notify.PARAMS` is the table of notify_* params; `notify.with_params` adds them to a runbook's. " ..
        "It carries the primitives notify.webhook and notify.email too, so `local notify = require " ..
        "\"runbook.notify\"` hides nothing.",
  functions = {
    {
      name = "with_params",
      call = "params = notify.with_params{ app = { type = \"string\", default = \"/srv/app\" } }",
      doc = "Adds the notify_* params (notify_webhook, notify_format, notify_smtp, notify_from, notify_to, " ..
            "notify_smtp_user, notify_smtp_password, notify_users_to, issue, impact, notify_strict) to a runbook's " ..
            "params table; a param of that name already declared is kept as it is.",
      args = {},
      returns = "the same params table",
      results = {},
    },
    {
      name = "build",
      call = "notify.build{ kind = \"start\", fields = { issue = \"checkout answers 500\", severity = \"P1\", eta = \"20m\" } }",
      doc = "Fills a template from `fields` and the run (its name, step of steps, start time). Changes nothing.",
      args = { KIND, FIELDS },
      returns = "{ kind, subject, text, chat } (progress: also percent, eta)",
      results = {
        { name = "kind", type = "string", doc = "the template" },
        { name = "subject", type = "string", doc = "the subject line" },
        { name = "text", type = "string", doc = "the text (mail, log)" },
        { name = "chat", type = "string", doc = "the chat message (Slack/Teams)" },
      },
    },
    {
      name = "send",
      call = "notify.send{ kind = \"start\", params = p, fields = { issue = p.issue, severity = \"P1\" } }",
      doc = "Builds the notice `kind` (or takes `notice`), prints it into the run's log and delivers it: to the " ..
            "webhook and to the mail recipients the params name (notify_webhook, notify_smtp + notify_to), or to " ..
            "those given here, which win. A delivery that fails is a warning and the run goes on, unless `strict` " ..
            "(or the notify_strict param): a rollback must not stop because the chat is down.",
      args = {
        opt("kind", "string", "the template (start, progress, finish, users, log_entry); or give `notice`"),
        opt("notice", "map", "a notice already built (notify.build, or { subject =, text = })"),
        FIELDS, PARAMS_ARG,
        opt("webhook", "string", "webhook URL (instead of params.notify_webhook)"),
        opt("format", "string", "slack, teams or generic (instead of params.notify_format; default slack)"),
        opt("smtp", "string", "smtp://host:port (instead of params.notify_smtp)"),
        opt("from", "string", "sender address (instead of params.notify_from)"),
        opt("to", "any", "an address or a list of them (instead of params.notify_to)"),
        opt("username", "string", "SMTP AUTH user"),
        opt("password", "string", "SMTP AUTH password (give it from a secret param)"),
        opt("strict", "boolean", "a failed delivery raises (default: params.notify_strict, else false)"),
      },
      returns = "{ notice, subject, text, sent }",
      results = SENT,
    },
    {
      name = "users",
      call = "notify.users{ params = p, fields = { product = \"SizeWise\", impact = \"uploads failed for 12 minutes\" } }",
      doc = "000's user communication after a successful rollback (\"Brief Service Interruption Resolved\"): " ..
            "printed, and mailed to params.notify_users_to (or `to`) through params.notify_smtp (or `smtp`).",
      args = {
        FIELDS, PARAMS_ARG,
        opt("smtp", "string", "smtp://host:port (instead of params.notify_smtp)"),
        opt("from", "string", "sender address (instead of params.notify_from)"),
        opt("to", "any", "an address or a list of them (instead of params.notify_users_to)"),
        opt("strict", "boolean", "a failed delivery raises (default: params.notify_strict, else false)"),
      },
      returns = "{ notice, subject, text, sent }",
      results = SENT,
    },
    {
      name = "webhook",
      call = "notify.webhook{ url = p.notify_webhook, text = \"rolled back\", format = \"slack\" }",
      doc = "The primitive notify.webhook, unchanged (its arguments and results: docs/api.md).",
      args = {}, returns = "{ status, bytes, elapsed_ms, response }", results = {},
    },
    {
      name = "email",
      call = "notify.email{ smtp = \"smtp://127.0.0.1:25\", from = \"runbook@example.com\", to = \"team@example.com\", subject = \"rolled back\", body = \"...\" }",
      doc = "The primitive notify.email, unchanged (its arguments and results: docs/api.md).",
      args = {}, returns = "{ recipients, bytes, code, elapsed_ms }", results = {},
    },
    {
      name = "print",
      call = "notify.print{ title = \"Incident report (draft)\", lines = { \"Cause: ...\", \"Fix: ...\" } }",
      doc = "Prints a block (a filled-in template, a report) line by line into the run's log under a title, so it " ..
            "is in the journal with the run instead of in someone's shell history.",
      args = {
        { name = "title", type = "string", required = true, doc = "the block's title" },
        { name = "lines", type = "list of strings", required = true, doc = "its lines" },
      },
      returns = "{ lines }",
      results = { { name = "lines", type = "integer", doc = "lines printed" } },
    },
  },
}

local spec = util._specs(M.__api)

local function empty(v) return v == nil or v == "" or (type(v) == "table" and next(v) == nil) end
local function nonempty(v) if empty(v) then return nil end return v end

function M.with_params(params)
  if type(params) ~= "table" then
    error("notify.with_params: bad argument #1 (a table of params expected, got " .. util._got(params) .. ")", 2)
  end
  for k, v in pairs(M.PARAMS) do
    if params[k] == nil then params[k] = v end
  end
  return params
end

function M.build(args)
  local a = util.check_args{ call = "notify.build", args = args, spec = spec.build }
  local notice = require "notice"
  return notice[a.kind](a.fields or {})
end

function M.print(args)
  local a = util.check_args{ call = "notify.print", args = args, spec = spec.print }
  log.info("---- " .. a.title .. " ----")
  for _, l in ipairs(a.lines) do log.info(l) end
  return { lines = #a.lines }
end

local function strict_of(a, p)
  if a.strict ~= nil then return a.strict end
  return rawget(p, "notify_strict") == true
end

function M.send(args)
  local a = util.check_args{ call = "notify.send", args = args, spec = spec.send }
  if (a.kind == nil) == (a.notice == nil) then
    error("notify.send: give one of 'kind' (a template) and 'notice' (one built)", 2)
  end
  if a.kind ~= nil and not KINDS[a.kind] then
    error("notify.send: bad argument 'kind' (start, progress, finish, users or log_entry expected, got '" ..
          tostring(a.kind):sub(1, 40) .. "')", 2)
  end
  if a.notice ~= nil and type(a.notice.text) ~= "string" then
    error("notify.send: bad argument 'notice' (a notice with a text expected)", 2)
  end
  local notice = require "notice"
  local p = a.params or {}
  local n = a.notice or notice[a.kind](a.fields or {})
  M.print{ title = n.subject or a.kind or "notice", lines = { n.text } }
  local to = {
    webhook = nonempty(a.webhook or rawget(p, "notify_webhook")), format = a.format or rawget(p, "notify_format"),
    smtp = nonempty(a.smtp or rawget(p, "notify_smtp")), from = a.from or rawget(p, "notify_from"),
    to = nonempty(a.to or rawget(p, "notify_to")), username = nonempty(a.username or rawget(p, "notify_smtp_user")),
    password = nonempty(a.password or rawget(p, "notify_smtp_password")), best_effort = not strict_of(a, p),
  }
  local sent = 0
  if to.webhook or (to.smtp and to.to) then sent = notice.send(n, to) end
  return { notice = n, subject = n.subject, text = n.text, sent = sent }
end

function M.users(args)
  local a = util.check_args{ call = "notify.users", args = args, spec = spec.users }
  local notice = require "notice"
  local p = a.params or {}
  local n = notice.users(a.fields or {})
  M.print{ title = n.subject, lines = { n.text } }
  local smtp, rcpt = nonempty(a.smtp or rawget(p, "notify_smtp")), nonempty(a.to or rawget(p, "notify_users_to"))
  local sent = 0
  if smtp and rcpt then
    sent = notice.send(n, { smtp = smtp, from = a.from or rawget(p, "notify_from"), to = rcpt,
                            username = nonempty(rawget(p, "notify_smtp_user")), password = nonempty(rawget(p, "notify_smtp_password")),
                            best_effort = not strict_of(a, p) })
  end
  return { notice = n, subject = n.subject, text = n.text, sent = sent }
end

return M
