-- lint: 5 error undefined global 'os'
runbook { name = "bad", version = "1.0.0" }

step("Look", function(p)
  log.info(os.getenv("HOME"))
end)
