-- test: table.unpack of a huge range
-- expect: exit=2 within=4s

runbook { name = "table-unpack-huge", version = "1.0.0" }
step{ "unpack", timeout = "2s", run = function() table.unpack({}, 1, 1e8) end }
