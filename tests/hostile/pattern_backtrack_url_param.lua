-- test: a backtracking pattern over a 30 KB url parameter
-- expect: exit=1|2 within=4s
-- args: -p url=http://127.0.0.1/{rep:a:30000}

runbook { name = "pattern-backtrack-url-param", version = "1.0.0", params = { url = { type = "url" } } }
step{ "match", timeout = "2s", run = function(p) p.url:find(".-.-.-.-%%") end }
