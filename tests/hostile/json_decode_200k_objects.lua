-- test: json.decode of 200,000 nested objects
-- expect: exit=1 within=4s
-- output: nested deeper

runbook { name = "json-decode-200k-objects", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  json.decode(string.rep('{"a":', 200000) .. "1" .. string.rep("}", 200000))
end }
