-- lint: 6 error expected statement near ')'
runbook { name = "bad", version = "1.0.0" }

step("Look", function(p)
  if true then log.info("x")
end)
