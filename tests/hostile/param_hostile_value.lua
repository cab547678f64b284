-- test: a 100 KB parameter value
-- expect: exit=1|2 within=4s
-- args: -p s={rep:ab:50000}

runbook { name = "param-hostile-value", version = "1.0.0", params = { s = { type = "string" } } }
step{ "reached", timeout = "2s", run = function(p) error("got " .. #p.s .. " bytes") end }
