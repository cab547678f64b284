-- test: a 30 KB url as a declared default
-- expect: exit=1|2 within=4s

runbook { name = "param-url-30k-default", version = "1.0.0",
          params = { url = { type = "url", default = "http://" .. string.rep("h", 30000) .. "/x" } } }
step{ "reached", timeout = "2s", run = function() error("accepted the url") end }
