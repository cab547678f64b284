-- test: json.decode of 100,000 nested lists: a clear depth error, no segfault
-- expect: exit=1 within=4s
-- output: nested deeper

runbook { name = "json-decode-100k-lists", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  json.decode(string.rep("[", 100000) .. string.rep("]", 100000))
end }
