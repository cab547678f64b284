-- test: a UTF-8 BOM before the first line (was a syntax error) is accepted
-- expect: exit=0 within=4s
-- output: first line handled

runbook { name = "bom", version = "1.0.0" }
step("ok", function() log.info("first line handled") end)
