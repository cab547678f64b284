-- test: json.encode of a 100,000-level table
-- expect: exit=2 within=4s
-- output: nested deeper

runbook { name = "json-encode-100k-levels", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local t = {}
  for _ = 1, 100000 do t = { t } end
  json.encode(t)
end }
