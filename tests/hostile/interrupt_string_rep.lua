-- test: Ctrl-C during string.rep("", math.maxinteger)
-- expect: exit=0|130 within=3s
-- interrupt: 1s

runbook { name = "interrupt-string-rep", version = "1.0.0" }
step{ "rep", timeout = "60s", run = function() string.rep("", math.maxinteger) end }
