-- test: a server trickling one byte a second: the step deadline holds
-- expect: exit=1 within=4s
-- server: trickle
-- args: -p url={url}

runbook { name = "http-trickle-server", version = "1.0.0", params = { url = { type = "url" } } }
step{ "get", timeout = "2s", run = function(p)
  http.get{ url = p.url .. "/", timeout = "30s" }
end }
