-- test: json.decode just past the 200-level limit fails with the depth error
-- expect: exit=1 within=4s
-- output: nested deeper

runbook { name = "json-decode-250-levels", version = "1.0.0" }
step{ "decode", timeout = "2s", run = function()
  json.decode(string.rep("[", 250) .. string.rep("]", 250))
end }
