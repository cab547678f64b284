-- test: error() with a 100 MB message: truncated in the journal
-- expect: exit=1 within=6s
-- journal-max-mb: 20

runbook { name = "error-huge-message", version = "1.0.0" }
step{ "raise", timeout = "4s", run = function() error(string.rep("m", 100 << 20)) end }
