-- test: print of 50 MB and of many arguments
-- expect: exit=0 within=8s
-- journal-max-mb: 20

runbook { name = "print-huge", version = "1.0.0" }
step{ "print", timeout = "6s", run = function()
  print(string.rep("P", 50 << 20))
  print(table.unpack((function() local t = {} for i = 1, 5000 do t[i] = i end return t end)()))
end }
