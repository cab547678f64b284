-- test: a cyclic table as http.post's json argument
-- expect: exit=2 within=4s
-- server: echo
-- args: -p url={url}

runbook { name = "effect-arg-cycle-http", version = "1.0.0", params = { url = { type = "url" } } }
step{ "post", timeout = "2s", run = function(p)
  local t = { a = {} }
  t.a.back = t
  http.post{ url = p.url .. "/echo", json = t, timeout = "1s" }
end }
