#!/usr/bin/env -S runbook exec
-- test: after a #! line, a syntax error is reported at its true line (7)
-- expect: exit=2 within=4s
-- output: :7:

runbook { name = "shebang-syntax-error-line", version = "1.0.0" }
step("broken", function() local = end)
