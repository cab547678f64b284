-- Shared by the stdlib tests: run uses_stdlib.lua with a call and fakes, read back its result.
local t = require "runbook.test"
local H = {}

function H.run(what, fakes, params)
  local p = { what = what }
  for k, v in pairs(params or {}) do p[k] = v end
  return t.run("uses_stdlib.lua", { params = p, fakes = fakes or {} })
end

-- The call's result, as the runbook logged it.
function H.result(r)
  for _, l in ipairs(r.logs) do
    local j = l.message:match("^result: (.*)$")
    if j then return json.decode(j) end
  end
  error("the run logged no result (outcome " .. tostring(r.outcome) .. ": " .. tostring(r.error) .. ")", 2)
end

function H.logged(r, needle)
  for _, l in ipairs(r.logs) do
    if l.message:find(needle, 1, true) then return l end
  end
  return nil
end

-- The error a call raises, as text (the call must raise).
function H.error_of(fn, args)
  local ok, err = pcall(fn, args)
  if ok then error("the call did not raise", 2) end
  return tostring(err)
end

-- A fake answering `v` (a string, a boolean) to every call.
function H.const(v) return function() return v end end

-- A clock that moves `step` seconds at each reading (the fake of time.now).
function H.clock(step)
  local now = 1000
  return function() now = now + step; return now end
end

return H
