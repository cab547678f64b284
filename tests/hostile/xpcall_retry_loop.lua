-- test: an endless loop of xpcall around busy loops (the kill must stick)
-- expect: exit=1 within=4s

runbook { name = "xpcall-retry-loop", version = "1.0.0" }
step{ "loop", timeout = "2s", run = function()
  while true do
    xpcall(function() while true do end end, function(m) return m end)
    pcall(function() while true do end end)
  end
end }
