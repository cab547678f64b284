-- runbook.notify under runbook test: printed always, delivered where the params say.
local t = require "runbook.test"
local H = require "helpers"
local notify = require "runbook.notify"

t.case("send: printed into the log; no channel configured, nothing sent", function()
  local r = H.run("send")
  t.eq(r.outcome, "succeeded")
  t.not_called(r, "notify.webhook")
  t.not_called(r, "notify.email")
  t.ok(H.logged(r, "---- [ACTION] Initiating Rollback - checkout answers 500 ----"), "the notice is printed")
  t.eq(H.result(r).sent, 0)
end)

t.case("send: to the webhook and the mail recipients of the params", function()
  local r = H.run("send", {}, { notify_webhook = "http://127.0.0.1:9/hook/T0KEN", notify_smtp = "smtp://127.0.0.1:25",
                                notify_to = { "team@example.com" } })
  t.called(r, "notify.webhook", { format = "slack" })
  t.called(r, "notify.email", { smtp = "smtp://127.0.0.1:25", to = { "team@example.com" },
                                subject = "[ACTION] Initiating Rollback - checkout answers 500" })
  t.eq(H.result(r).sent, 2)
end)

t.case("send: a chat that is down is a warning, not a failed rollback", function()
  local r = H.run("send", { ["notify.webhook"] = t.fail("connection refused") }, { notify_webhook = "http://127.0.0.1:9/hook" })
  t.eq(r.outcome, "succeeded")
  t.ok(H.logged(r, "notice not sent by webhook"), "warned")
  r = H.run("send", { ["notify.webhook"] = t.fail("connection refused") },
            { notify_webhook = "http://127.0.0.1:9/hook", notify_strict = "true" })
  t.eq(r.outcome, "failed")
end)

t.case("users: mailed to notify_users_to only", function()
  local r = H.run("users", {}, { notify_smtp = "smtp://127.0.0.1:25", notify_users_to = { "users@example.com" },
                                 notify_webhook = "http://127.0.0.1:9/hook" })
  t.called(r, "notify.email", { to = { "users@example.com" }, subject = "SizeWise - Brief Service Interruption Resolved" })
  t.not_called(r, "notify.webhook")
end)

t.case("bad arguments name the call and the argument", function()
  local e = H.error_of(notify.build, { kind = "begin" })
  t.ok(e:find("notify.build: bad argument 'kind' (start, progress, finish, users or log_entry expected, got 'begin')", 1, true), e)
  e = H.error_of(notify.send, { fields = {} })
  t.ok(e:find("notify.send: give one of 'kind'", 1, true), e)
  e = H.error_of(notify.print, { title = "x", lines = "one line" })
  t.ok(e:find("notify.print: bad argument 'lines' (list of strings expected, got string 'one line')", 1, true), e)
  e = H.error_of(notify.users, { params = "p" })
  t.ok(e:find("notify.users: bad argument 'params' (table of name = value expected, got string 'p')", 1, true), e)
  e = H.error_of(notify.with_params, "x")
  t.ok(e:find("notify.with_params: bad argument #1 (a table of params expected, got string 'x')", 1, true), e)
end)
