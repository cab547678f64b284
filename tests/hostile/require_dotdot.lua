-- test: require of a name that climbs out with ..
-- expect: exit=1|2 within=4s
-- file: ../outside/evil.lua = return 'secret module from outside'
-- output-not: LEAKED

runbook { name = "require-dotdot", version = "1.0.0" }
step{ "require", timeout = "2s", run = function()
  for _, name in ipairs({ "../outside/evil", "..", "/etc/passwd", "..%2foutside", "a/../../outside/evil" }) do
    local ok, m = pcall(require, name)
    if ok then log.info("LEAKED " .. tostring(m)) end
  end
  error("done")
end }
