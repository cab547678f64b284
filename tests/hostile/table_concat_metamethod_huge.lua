-- test: table.concat over 2^62 slots through an __index metamethod
-- expect: exit=1 within=4s

runbook { name = "table-concat-metamethod-huge", version = "1.0.0" }
step{ "concat", timeout = "2s", run = function()
  table.concat(setmetatable({}, { __index = function() return "" end }), "", 1, 1 << 62)
end }
