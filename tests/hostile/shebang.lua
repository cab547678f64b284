#!/usr/bin/env -S runbook exec
-- test: a #! first line (was a syntax error) is accepted
-- expect: exit=0 within=4s
-- output: first line handled

runbook { name = "shebang", version = "1.0.0" }
step("ok", function() log.info("first line handled") end)
