-- test: math replaced by a table whose every access errors
-- expect: exit=1|2 within=4s

runbook { name = "math-trap-table", version = "1.0.0" }
math = setmetatable({}, { __index = function(_, k) error("math." .. tostring(k) .. " trapped") end })
step{ "fails", timeout = "2s", run = function() error("the run reached its step") end }
