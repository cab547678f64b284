-- test: json.encode of a table whose __index/__pairs metamethods loop
-- expect: exit=1 within=4s

runbook { name = "json-encode-index-metamethod", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local t = setmetatable({ 1, 2 }, {
    __index = function() while true do end end,
    __pairs = function() while true do end end,
    __len = function() while true do end end,
  })
  json.encode({ t })
  error("encoded without looping: fine, but fail the step so the expectation is fixed")
end }
