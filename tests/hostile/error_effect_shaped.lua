-- test: an error table shaped like an effect error with hostile field types
-- expect: exit=1 within=4s

runbook { name = "error-effect-shaped", version = "1.0.0" }
step{ "raise", timeout = "2s", run = function()
  local r = {}
  r.r = r
  error({ effect = {}, message = print, result = r, site = 42 })
end }
