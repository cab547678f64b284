-- test: require of a module beside the runbook that is a symlink to a file outside
-- expect: exit=1|2 within=4s
-- file: ../outside/evil.lua = return 'secret module from outside'
-- symlink: evil.lua -> ../outside/evil.lua
-- output-not: LEAKED

runbook { name = "require-symlink-outside", version = "1.0.0" }
step{ "require", timeout = "2s", run = function()
  local m = require("evil")
  log.info("LEAKED " .. tostring(m))
end }
