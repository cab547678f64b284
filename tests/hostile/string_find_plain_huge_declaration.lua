-- test: the same huge plain find while declaring
-- expect: exit=0|2 within=12s

runbook { name = "string-find-plain-huge-declaration", version = "1.0.0" }
string.find(string.rep("a", 64 << 20), string.rep("a", 64 << 10) .. "b", 1, true)
step("never", function() end)
