-- test: string.rep of 2^40 bytes: refused (memory ceiling or length limit)
-- expect: exit=2 within=4s

runbook { name = "string-rep-huge", version = "1.0.0" }
step{ "rep", timeout = "2s", run = function() string.rep("x", 1 << 40) end }
