-- test: io.open of /etc/passwd
-- expect: exit=2 within=4s

runbook { name = "io-open-attempt", version = "1.0.0" }
step{ "escape", timeout = "2s", run = function() io.open("/etc/passwd"):read("a") end }
