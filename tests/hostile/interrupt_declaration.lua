-- test: Ctrl-C during an endless loop while declaring
-- expect: exit=130|2 within=3s
-- interrupt: 1s

runbook { name = "interrupt-declaration", version = "1.0.0" }
while true do end
