-- test: a runbook name with NUL, newlines and escape sequences
-- expect: exit=1|2 within=4s

runbook { name = "a\0b\n\27[31mred\r", version = "1.0.0" }
step{ "reached", timeout = "2s", run = function() error("accepted the name") end }
