-- test: table.move of 2^62 slots into another table
-- expect: exit=1 within=4s

runbook { name = "table-move-other-table", version = "1.0.0" }
step{ "move", timeout = "2s", run = function() table.move({}, 1, 1 << 62, 1, {}) end }
