-- test: require through a directory symlink pointing outside
-- expect: exit=1|2 within=4s
-- file: ../outside/evil.lua = return 'secret module from outside'
-- symlink: lib -> ../outside
-- output-not: LEAKED

runbook { name = "require-symlink-dir-outside", version = "1.0.0" }
step{ "require", timeout = "2s", run = function()
  local m = require("lib.evil")
  log.info("LEAKED " .. tostring(m))
end }
