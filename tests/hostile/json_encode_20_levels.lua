-- test: json.encode of 18..20-level tables (hung) works
-- expect: exit=0 within=4s

runbook { name = "json-encode-20-levels", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  for depth = 18, 20 do
    local t = { n = depth }
    for _ = 1, depth do t = { x = t } end
    json.encode(t)
  end
end }
