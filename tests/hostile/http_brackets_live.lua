-- test: an HTTP answer of 400 KB of nested brackets (segfaulted the runner)
-- expect: exit=1 within=5s
-- server: brackets
-- args: -p url={url}
-- output: nested deeper

runbook { name = "http-brackets-live", version = "1.0.0", params = { url = { type = "url" } } }
step{ "get", timeout = "3s", run = function(p)
  local r = http.get{ url = p.url .. "/deep", timeout = "2s" }
  -- Either the engine refused the JSON (an error above) or it left it as text: decoding it must
  -- then fail with the depth error.
  json.decode(r.body)
end }
