-- test: json.encode of a plain 17-level table (aborted the process) works
-- expect: exit=0 within=4s

runbook { name = "json-encode-17-levels", version = "1.0.0" }
step{ "encode", timeout = "2s", run = function()
  local t = { leaf = true }
  for _ = 1, 17 do t = { t } end
  local s = json.encode(t)
  assert(#s > 17, "short encoding: " .. s)
  local back = json.decode(s)
  for _ = 1, 17 do back = back[1] end
  assert(back.leaf == true, "round trip lost the leaf")
end }
