-- test: json round trip of a wide (1e5 keys) object stays within the deadline
-- expect: exit=1 within=4s

runbook { name = "json-roundtrip-wide", version = "1.0.0" }
step{ "wide", timeout = "2s", run = function()
  local t = {}
  for i = 1, 100000 do t["k" .. i] = i end
  local back = json.decode(json.encode(t))
  assert(back.k100000 == 100000)
  error("done")
end }
