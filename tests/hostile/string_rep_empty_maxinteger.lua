-- test: string.rep("", math.maxinteger): a C loop of 2^63 iterations
-- expect: exit=0 within=4s

runbook { name = "string-rep-empty-maxinteger", version = "1.0.0" }
step{ "rep", timeout = "2s", run = function() string.rep("", math.maxinteger) end }
