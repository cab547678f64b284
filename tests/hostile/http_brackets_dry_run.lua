-- test: the same brackets answer in --dry-run (the probe runs)
-- expect: exit=1 within=5s
-- server: brackets
-- args: --dry-run -p url={url}
-- output: nested deeper

runbook { name = "http-brackets-dry-run", version = "1.0.0", params = { url = { type = "url" } } }
step{ "get", timeout = "3s", run = function(p)
  local r = http.get{ url = p.url .. "/deep", timeout = "2s" }
  json.decode(r.body)
end }
