runbook {
  name = "demo-stop",
  version = "1.0.0",
  summary = "Stop the demo app",
  params = {
    app    = { type = "path", default = "/tmp/runbook-demo/app", doc = "the demo app's repository" },
    health = { type = "url", default = "http://127.0.0.1:18080/health", doc = "the app's health URL" },
  },
}

step("Stop the demo app", function(p)
  require("services")(p)
  service.stop("demo-app")
end)
