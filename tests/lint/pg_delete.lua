-- lint: 6 warning DELETE in pg.exec with no backup before it
runbook { name = "bad", version = "1.0.0" }

step("Delete", function(p)
  local dsn = "postgresql://app@127.0.0.1/app"
  pg.exec{ dsn = dsn, sql = "DELETE FROM sessions WHERE expired" }
end)
