-- test: plain string.find of a 64 KB needle in a 64 MB haystack
-- expect: exit=0|1 within=4s

runbook { name = "string-find-plain-huge", version = "1.0.0" }
step{ "find", timeout = "2s", run = function()
  local hay = string.rep("a", 64 << 20)
  local needle = string.rep("a", 64 << 10) .. "b"
  string.find(hay, needle, 1, true)
end }
