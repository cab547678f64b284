-- test: load() with an environment table trying to reach hidden libraries
-- expect: exit=1 within=4s
-- output-not: ESCAPED

runbook { name = "load-env-escape", version = "1.0.0" }
step{ "load", timeout = "2s", run = function()
  local f = load("return io or os or debug or package or collectgarbage", "x", "t", {})
  local got = f and f()
  if got then log.info("ESCAPED: " .. tostring(got)) end
  error("no escape")
end }
