-- lint: 5 warning redis.flush with no backup before it
runbook { name = "bad", version = "1.0.0" }

step("Flush", function(p)
  redis.flush{ url = "redis://127.0.0.1:6379/0", confirm = true }
end)
