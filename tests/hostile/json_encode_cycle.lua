-- test: json.encode of a table that contains itself
-- expect: exit=2 within=4s

runbook { name = "json-encode-cycle", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local t = { a = 1 }
  t.self = t
  json.encode(t)
end }
