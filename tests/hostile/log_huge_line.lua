-- test: log.info of 100 MB: the journal row is truncated with a marker
-- expect: exit=0 within=8s
-- journal-max-mb: 20

runbook { name = "log-huge-line", version = "1.0.0" }
step{ "log", timeout = "6s", run = function() log.info(string.rep("L", 100 << 20)) end }
