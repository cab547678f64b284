-- test: a step that overran its deadline in C fails even though its last call returned
-- expect: exit=1 within=4s

runbook { name = "deadline-then-return", version = "1.0.0" }
step{ "late", timeout = "1s", run = function()
  local ok = pcall(string.find, string.rep("a", 25), string.rep("a?", 25) .. string.rep("a", 25))
  return "returned normally"
end }
