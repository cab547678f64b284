-- test: a 1,000-level table as an effect argument: a clear error, nothing sent
-- expect: exit=2 within=4s
-- server: echo
-- args: -p url={url}
-- output: nested deeper

runbook { name = "effect-arg-1000-levels", version = "1.0.0", params = { url = { type = "url" } } }
step{ "post", timeout = "2s", run = function(p)
  local t = {}
  for _ = 1, 1000 do t = { t } end
  http.post{ url = p.url .. "/echo", json = t, timeout = "1s" }
end }
