-- test: a 20-level table as http.post's json argument (hung past the step timeout) is sent and echoed
-- expect: exit=0 within=6s
-- server: echo
-- args: -p url={url}

runbook { name = "effect-arg-20-levels", version = "1.0.0", params = { url = { type = "url" } } }
step{ "post", timeout = "4s", run = function(p)
  local t = { leaf = "x" }
  for _ = 1, 20 do t = { t } end
  local r = http.post{ url = p.url .. "/echo", json = t, timeout = "3s" }
  assert(r.status == 200, "status " .. tostring(r.status))
end }
