-- Loaded into every runbook's sandbox after the effect modules: friendlier helpers written in Lua
-- on top of the effects. Everything here goes through effects, so it is journaled and replayable.

wait = rawget(_G, "wait") or {}

local function seconds(d, what)
  if type(d) == "number" then return d end
  if type(d) ~= "string" then error(what .. ": duration like \"30s\" expected", 3) end
  local total, rest = 0, d
  for num, unit in d:gmatch("([%d%.]+)(%a*)") do
    local n = tonumber(num)
    if not n then error(what .. ": bad duration '" .. d .. "'", 3) end
    if unit == "ms" then total = total + n / 1000
    elseif unit == "s" or unit == "" then total = total + n
    elseif unit == "m" then total = total + n * 60
    elseif unit == "h" then total = total + n * 3600
    else error(what .. ": bad duration '" .. d .. "'", 3) end
  end
  return total
end
wait.seconds = seconds

-- wait["until"](fn, { timeout = "60s", interval = "1s", what = "the queue to drain" })
-- Calls fn until it returns a true value, which is returned. `until` is a Lua keyword, so the
-- same function is also wait.for_(fn, opts) and wait.poll(fn, opts).
-- In a dry-run fn is called once and not waited for: the changes it waits on were not made.
local function wait_until(fn, opts)
  opts = opts or {}
  if type(fn) ~= "function" then error("wait.until: a function expected", 2) end
  local timeout = seconds(opts.timeout or "60s", "wait.until timeout")
  local interval = seconds(opts.interval or "1s", "wait.until interval")
  local what = opts.what or "the condition"
  local v = fn()
  if v then return v end
  if run.dry_run then
    log.info("would wait up to " .. timeout .. "s for " .. what)
    return true
  end
  local start = time.now()
  while true do
    local left = timeout - (time.now() - start)
    if left <= 0 then
      error("wait.until: " .. what .. " did not hold within " .. timeout .. "s", 2)
    end
    sleep(math.min(interval, left))
    v = fn()
    if v then return v end
    interval = math.min(interval * 1.5, 10)
  end
end
wait["until"] = wait_until
wait.for_ = wait_until
wait.poll = wait_until

-- try(fn, handler): runs fn; on error calls handler(err) and returns its result. For runbooks
-- that choose to handle a failure (the default is to stop).
function try(fn, handler)
  local ok, res = pcall(fn)
  if ok then return res end
  if handler then return handler(res) end
  return nil, res
end
