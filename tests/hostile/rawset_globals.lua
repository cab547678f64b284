-- test: rawset of _G: error, tostring, pcall, step, log removed inside a step
-- expect: exit=1|2 within=4s

runbook { name = "rawset-globals", version = "1.0.0" }
step{ "clobber", timeout = "2s", run = function()
  for _, k in ipairs({ "error", "tostring", "pcall", "xpcall", "step", "log", "json", "print",
                       "type", "setmetatable", "runbook", "run", "string", "table" }) do
    rawset(_G, k, nil)
  end
  rawset(_G, "tostring", 42)
  local x = nil
  x.boom = 1
end }
step{ "after", timeout = "2s", run = function() local y = nil; y.again = 1 end }
