-- test: table.move over 2^63 slots
-- expect: exit=1 within=4s

runbook { name = "table-move-2-63", version = "1.0.0" }
step{ "move", timeout = "2s", run = function() table.move({}, 1, math.maxinteger - 1, 2) end }
