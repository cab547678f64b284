-- test: string.format with huge widths and a huge %s
-- expect: exit=1 within=4s

runbook { name = "string-format-huge", version = "1.0.0" }
step{ "format", timeout = "2s", run = function()
  local big = string.rep("f", 64 << 20)
  local keep = {}
  for i = 1, 10 do keep[i] = string.format("%s%s%99d", big, big, i) end
end }
