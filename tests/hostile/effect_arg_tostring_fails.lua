-- test: an effect argument whose __tostring errors (the binding may stringify it)
-- expect: exit=2 within=4s

runbook { name = "effect-arg-tostring-fails", version = "1.0.0" }
step{ "exec", timeout = "2s", run = function()
  local bad = setmetatable({}, { __tostring = function() error("tostring refused") end,
                                 __index = function() error("index refused") end })
  exec{ "echo", bad }
end }
