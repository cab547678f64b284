-- test: a __gc finalizer that calls an effect and step()
-- expect: exit=1|2 within=4s

runbook { name = "gc-calls-effect", version = "1.0.0" }
step{ "garbage", timeout = "2s", run = function()
  for _ = 1, 20 do
    setmetatable({}, { __gc = function() exec{ "true" }; step("from gc", function() end) end })
  end
  for i = 1, 2e6 do local t = { i } end
  error("done")
end }
