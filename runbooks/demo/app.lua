runbook {
  name = "demo-app",
  version = "1.1.0",
  summary = "Start or stop the demo app (whatever release is checked out) as a process service",
  params = {
    action = { type = "string", default = "start", choices = { "start", "stop" } },
    app    = { type = "path", default = "/tmp/runbook-demo/app", doc = "the demo app's repository" },
    health = { type = "url", default = "http://127.0.0.1:18080/health", doc = "the app's health URL" },
  },
}

step("Start or stop the demo app", function(p)
  require("services")(p)
  if p.action == "stop" then
    service.stop("demo-app")
    return
  end
  local s = service.start("demo-app")
  log.info("demo-app running, pid " .. tostring(s.pid))
  -- It answers, healthy or not: the bad release answers 503.
  wait["until"](function() return http.get{ url = p.health, check = false }.status ~= 0 end,
                { timeout = "20s", interval = "100ms", what = "the app to answer" })
end)
