-- The demo environment's services, declared once. Runbooks load this module and call it with
-- their parameters: `require("demo.services")(p)` from runbooks/, `require("services")(p)` from
-- here. For your own systems, write a module like this one that declares yours.
--
-- p.app is the deployed code (a git repository); the demo keeps its config, data, logs and pid
-- files beside it. p.health is the app's health URL, whose port the app listens on.
return function(p)
  local root = p.app:match("^(.*)/[^/]+/?$") or "."
  local port = p.health:match("^https?://[^/:]+:(%d+)") or "80"
  service.define{
    name = "demo-app",
    backend = "process",
    argv = { "python3", p.app .. "/app.py", "--port", port,
             "--config", root .. "/config/app.json", "--db", root .. "/data/app.db" },
    cwd = p.app,
    log = root .. "/logs/app.log",
    pidfile = root .. "/run/demo-app.pid",
  }
  return { root = root, port = port }
end
