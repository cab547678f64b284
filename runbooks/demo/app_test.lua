-- runbooks/demo/app.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

t.case("start: the declared service starts and the app answers", function()
  local r = t.run("app.lua", {
    fakes = {
      ["service.start"] = { name = "demo-app", state = "running", pid = 4242 },
      ["http.get"] = { status = 503, body = "bad release" },   -- answering is enough, healthy or not
    },
  })
  t.eq(r.outcome, "succeeded", r.error)
  local def = t.called(r, "service.define", { name = "demo-app", backend = "process", cwd = "/tmp/runbook-demo/app" })
  t.eq(def.args.argv, { "python3", "/tmp/runbook-demo/app/app.py", "--port", "18080",
                        "--config", "/tmp/runbook-demo/config/app.json", "--db", "/tmp/runbook-demo/data/app.db" })
  t.called(r, "service.start", { name = "demo-app" })
  t.not_called(r, "service.stop")
  t.eq(r.logs[1].message, "demo-app running, pid 4242")
end)

t.case("stop: only the declared service is stopped, nothing is started", function()
  local r = t.run("app.lua", { params = { action = "stop" } })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "service.stop", { name = "demo-app" })
  t.not_called(r, "service.start")
  t.not_called(r, "http.get")
end)

t.case("a start that fails fails the run", function()
  local r = t.run("app.lua", { fakes = { ["service.start"] = t.fail("demo-app exited during settle (code 1)") } })
  t.eq(r.outcome, "failed")
  t.eq(r.exit_code, 1)
  t.not_called(r, "http.get")
end)

t.case("the port follows the health URL", function()
  local r = t.run("app.lua", {
    params = { health = "http://127.0.0.1:19090/health", app = "/opt/demo/app" },
    fakes = { ["http.get"] = { status = 200 } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  local def = t.called(r, "service.define")
  t.eq(def.args.argv[4], "19090")
  t.eq(def.args.pidfile, "/opt/demo/run/demo-app.pid")
end)
