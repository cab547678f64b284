-- test: an HTTP answer of one object with 200,000 keys, decoded, redacted (a secret is set) and journaled: linear, not quadratic
-- (the step and request timeouts are loose on purpose: the bound under test is "within", which the
-- sanitizer build doubles; a fixed step timeout would fail there first)
-- expect: exit=0 within=6s
-- server: wide
-- args: -p url={url} -p token=s3cret-token

runbook { name = "http-wide-object", version = "1.0.0",
          params = { url = { type = "url" }, token = { type = "string", secret = true } } }
step{ "get", timeout = "20s", run = function(p)
  local r = http.get{ url = p.url .. "/wide", timeout = "15s", headers = { Authorization = "Bearer " .. p.token } }
  assert(r.json and r.json.key199999 == 199999, "the whole object arrived")
  local t = json.decode(r.body)
  assert(t.key0 == 0)
  assert(#json.encode(t) > 3000000)
end }
