-- test: string.rep just under the memory ceiling, repeated
-- expect: exit=1 within=4s

runbook { name = "string-rep-near-ceiling", version = "1.0.0" }
step{ "rep", timeout = "2s", run = function()
  local keep = {}
  for i = 1, 100 do keep[i] = string.rep(tostring(i), 100 << 20) end
end }
