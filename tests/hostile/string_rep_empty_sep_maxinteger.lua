-- test: string.rep("", math.maxinteger, "") and via the method syntax
-- expect: exit=0 within=4s

runbook { name = "string-rep-empty-sep-maxinteger", version = "1.0.0" }
step{ "rep", timeout = "2s", run = function() (""):rep(math.maxinteger, "") end }
