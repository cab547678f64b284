-- test: json.decode of 150 levels (under the limit) works
-- expect: exit=0 within=4s

runbook { name = "json-decode-150-levels", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  local v = json.decode(string.rep("[", 150) .. "7" .. string.rep("]", 150))
  for _ = 1, 150 do v = v[1] end
  assert(v == 7, "wrong value at the bottom")
end }
