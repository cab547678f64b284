-- lint: none
runbook { name = "good", version = "1.0.0" }

step("Drop", function(p)
  local dsn = "postgresql://app@127.0.0.1/app"
  pg.dump{ dsn = dsn, file = "/tmp/app.dump" }
  pg.script{ dsn = dsn, sql = "DROP TABLE old_sessions; TRUNCATE cache" }
end)
