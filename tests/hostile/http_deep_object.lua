-- test: an HTTP answer of 100,000 nested objects
-- expect: exit=1 within=5s
-- server: object
-- args: -p url={url}
-- output: nested deeper

runbook { name = "http-deep-object", version = "1.0.0", params = { url = { type = "url" } } }
step{ "get", timeout = "3s", run = function(p)
  local r = http.get{ url = p.url .. "/deep", timeout = "2s" }
  json.decode(r.body)
end }
