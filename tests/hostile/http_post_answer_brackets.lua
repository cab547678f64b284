-- test: a change (http.post) answered with nested brackets: journaled, no crash
-- expect: exit=1 within=5s
-- server: brackets
-- args: -p url={url}

runbook { name = "http-post-answer-brackets", version = "1.0.0", params = { url = { type = "url" } } }
step{ "post", timeout = "3s", run = function(p)
  local r = http.post{ url = p.url .. "/deep", json = { a = 1 }, timeout = "2s" }
  json.decode(r.body)
end }
