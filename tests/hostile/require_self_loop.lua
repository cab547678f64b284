-- test: a module that requires itself
-- expect: exit=1|2 within=4s
-- file: loop.lua = return require('loop')

runbook { name = "require-self-loop", version = "1.0.0" }
step{ "require", timeout = "2s", run = function() require("loop") end }
