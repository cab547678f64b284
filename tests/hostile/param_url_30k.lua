-- test: a 30 KB url parameter (std::regex segfault)
-- expect: exit=1|2 within=4s
-- args: -p url=http://127.0.0.1/{rep:a:30000}

runbook { name = "param-url-30k", version = "1.0.0", params = { url = { type = "url" } } }
step{ "reached", timeout = "2s", run = function() error("accepted the url: fail the step anyway") end }
