-- lint: 5 warning pkill signals every process whose name matches
runbook { name = "bad", version = "1.0.0" }

step("Stop", function(p)
  exec{ "pkill", "-f", "gunicorn" }
end)
