-- test: json.encode of two tables that contain each other, through a list
-- expect: exit=2 within=4s

runbook { name = "json-encode-mutual-cycle", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local a, b = {}, {}
  a[1] = b
  b[1] = a
  json.encode({ a })
end }
