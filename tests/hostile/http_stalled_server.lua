-- test: a server that accepts and never answers: http.get ends at its timeout
-- expect: exit=1 within=4s
-- server: stall
-- args: -p url={url}

runbook { name = "http-stalled-server", version = "1.0.0", params = { url = { type = "url" } } }
step{ "get", timeout = "2s", run = function(p)
  http.get{ url = p.url .. "/", timeout = "1s" }
end }
