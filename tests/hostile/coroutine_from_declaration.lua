-- test: a coroutine created while declaring, looping when resumed in a step
-- expect: exit=1 within=4s

runbook { name = "coroutine-from-declaration", version = "1.0.0" }
local co = coroutine.create(function() while true do end end)
step{ "resume", timeout = "2s", run = function()
  local ok, err = coroutine.resume(co)
  error("resume returned: " .. tostring(err))
end }
