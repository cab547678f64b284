-- test: json.encode of a 1,000-level table: the depth error
-- expect: exit=2 within=4s
-- output: nested deeper

runbook { name = "json-encode-1000-levels", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local t = {}
  for _ = 1, 1000 do t = { t } end
  json.encode(t)
end }
