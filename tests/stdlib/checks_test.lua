-- runbook.checks under runbook test: the effects it calls, what it returns, its argument errors.
local t = require "runbook.test"
local H = require "helpers"
local checks = require "runbook.checks"

local function status_by_path(args)
  if args.url:find("/bad", 1, true) then return { status = 500, body = "", elapsed_ms = 3 } end
  return { status = 200, body = "ok", elapsed_ms = 2 }
end

t.case("endpoints: one GET each, the failing ones returned and warned about", function()
  local r = H.run("endpoints", { ["http.get"] = status_by_path })
  t.eq(r.outcome, "succeeded")
  t.called(r, "http.get", { url = "http://127.0.0.1:8000/ok", check = false, timeout = "10s" })
  t.called(r, "http.get", { url = "http://127.0.0.1:8000/bad" })
  local res = H.result(r)
  t.eq(res.ok, false)
  t.eq(res.failed, { "http://127.0.0.1:8000/bad" })
  t.eq(res.passed, 1)
  t.eq(res.results[1].status, 200)
  t.eq(res.results[2].ok, false)
  local warn = H.logged(r, "http://127.0.0.1:8000/bad -> 500")
  t.ok(warn, "the failure is logged")
  t.eq(warn.level, "warn")
  t.ok(H.logged(r, "http://127.0.0.1:8000/ok -> 200 in 2 ms"), "the answer is logged with its time")
end)

t.case("endpoints: a transport failure counts as not answering", function()
  local r = H.run("endpoints", { ["http.get"] = { ok = false, error = "connection refused" } })
  t.eq(H.result(r).failed, { "http://127.0.0.1:8000/ok", "http://127.0.0.1:8000/bad" })
  t.ok(H.logged(r, "/bad -> http.get: connection refused"), "the error is logged, named as a real failure is")
end)

t.case("wait_endpoints: polls until the URL answers, then returns", function()
  local r = H.run("wait_endpoints", { ["http.get"] = t.sequence({ { status = 503 }, { status = 503 }, { status = 200, elapsed_ms = 4 } }) })
  t.eq(r.outcome, "succeeded")
  local gets, sleeps = 0, 0
  for _, e in ipairs(r.effects) do
    if e.name == "http.get" then gets = gets + 1 end
    if e.name == "sleep" then sleeps = sleeps + 1 end
  end
  t.eq(gets, 3)
  t.eq(sleeps, 2)
  t.eq(H.result(r).results[1].status, 200)
end)

t.case("wait_healthy: a URL that never gets healthy fails the step naming it", function()
  local r = H.run("wait_healthy", { ["http.wait_healthy"] = t.fail("http://127.0.0.1:8000/health answered 503 for 5s") })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("answered 503", 1, true), r.error)
  t.called(r, "http.wait_healthy", { url = "http://127.0.0.1:8000/health", timeout = "5s" })
end)

t.case("log_errors: counted by fs.grep, case-insensitively; a missing log counts 0", function()
  local r = H.run("log_errors", { ["fs.exists"] = H.const(true), ["fs.grep"] = { count = 7, lines = { "ERROR a", "Traceback b" } } })
  t.called(r, "fs.grep", { path = "/srv/app/file", patterns = { "ERROR", "Traceback" }, max = 2, ignore_case = true })
  t.eq(H.result(r), { exists = true, count = 7, lines = { "ERROR a", "Traceback b" } })
  r = H.run("log_errors", { ["fs.exists"] = H.const(false) })
  t.not_called(r, "fs.grep")
  t.eq(H.result(r), { exists = false, count = 0, lines = {} })
end)

t.case("bad arguments name the call and the argument", function()
  local e = H.error_of(checks.endpoints, { urls = 5 })
  t.ok(e:find("checks.endpoints: bad argument 'urls' (list of URLs expected, got number)", 1, true), e)
  e = H.error_of(checks.endpoints, { urls = { "ftp://x" } })
  t.ok(e:find("checks.endpoints: bad argument 'urls' (list of URLs expected", 1, true), e)
  e = H.error_of(checks.endpoints, { url = { "http://x/" } })
  t.ok(e:find("checks.endpoints: unknown argument 'url' (did you mean 'urls'?)", 1, true), e)
  e = H.error_of(checks.wait_healthy, { urls = { "http://x/" }, timeout = "soon" })
  t.ok(e:find("checks.wait_healthy: bad argument 'timeout' (duration like \"30s\" expected, got string 'soon')", 1, true), e)
  e = H.error_of(checks.wait_endpoints, {})
  t.ok(e:find("checks.wait_endpoints: bad argument 'urls' (list of URLs expected, got no value)", 1, true), e)
  e = H.error_of(checks.wait_endpoints, { urls = { "http://x/" }, expect = "200" })
  t.ok(e:find("checks.wait_endpoints: bad argument 'expect' (status or list of statuses expected", 1, true), e)
  e = H.error_of(checks.log_errors, { path = 3 })
  t.ok(e:find("checks.log_errors: bad argument 'path' (path expected, got number)", 1, true), e)
  e = H.error_of(checks.endpoints, "http://x/")
  t.ok(e:find("checks.endpoints: bad argument #1 (a table of named arguments expected, got string", 1, true), e)
end)
