#!/usr/bin/env -S runbook exec
-- test: a BOM followed by a #! line is accepted
-- expect: exit=0 within=4s
-- output: first line handled

runbook { name = "bom-shebang", version = "1.0.0" }
step("ok", function() log.info("first line handled") end)
