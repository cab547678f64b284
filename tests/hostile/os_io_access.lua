-- test: io, os, debug, package, dofile, loadfile, collectgarbage are not there
-- expect: exit=2 within=4s
-- output-not: ESCAPED

runbook { name = "os-io-access", version = "1.0.0" }
step{ "escape", timeout = "2s", run = function()
  for _, name in ipairs({ "io", "os", "debug", "package", "dofile", "loadfile", "collectgarbage",
                          "require_c", "loadstring", "module" }) do
    local ok, v = pcall(function() return _G[name] end)
    if ok and v ~= nil then log.info("ESCAPED: " .. name) end
  end
  os.execute("touch /tmp/runbook-hostile-escaped")
end }
