-- test: json.decode of 300,000 open brackets never closed
-- expect: exit=1 within=4s

runbook { name = "json-decode-unterminated-deep", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  json.decode(string.rep("[", 300000))
end }
