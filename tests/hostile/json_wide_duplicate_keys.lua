-- test: json.decode of 100,000 members that repeat 10 keys: the last value wins, in linear time
-- expect: exit=0 within=4s

runbook { name = "json-wide-duplicate-keys", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  local parts = {}
  for i = 1, 100000 do parts[i] = string.format('"k%d":%d', i % 10, i) end
  local t = json.decode("{" .. table.concat(parts, ",") .. "}")
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  assert(n == 10, "10 keys, got " .. n)
  assert(t.k0 == 100000 and t.k9 == 99999)
end }
