-- test: require of a module that is a FIFO (a read would block forever)
-- expect: exit=1|2 within=4s
-- fifo: pipe.lua

runbook { name = "require-fifo", version = "1.0.0" }
step{ "require", timeout = "2s", run = function() require("pipe") end }
