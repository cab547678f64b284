-- Loaded into every runbook's sandbox after the effect modules: friendlier helpers written in Lua
-- on top of the effects. Everything here goes through effects, so it is journaled and replayable.

wait = rawget(_G, "wait") or {}

local function seconds(d, what)
  if type(d) == "number" then return d end
  if type(d) ~= "string" then error(what .. ": duration like \"30s\" expected", 3) end
  local total = 0
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

-- time.format(t, fmt): a UTC timestamp for names and logs, from time.now() (journaled, so a
-- replay formats the same name). fmt understands %Y %m %d %H %M %S; the default is ISO 8601.
--   time.format(time.now(), "%Y%m%d-%H%M%S")  --> "20261124-031500"
time = rawget(_G, "time") or {}
function time.format(t, fmt)
  if type(t) ~= "number" then error("time.format: a number of seconds expected", 2) end
  fmt = fmt or "%Y-%m-%dT%H:%M:%SZ"
  local secs = math.floor(t)
  local days, rem = secs // 86400, secs % 86400
  -- Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
  local z = days + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  local f = {
    Y = string.format("%04d", y), m = string.format("%02d", m), d = string.format("%02d", d),
    H = string.format("%02d", rem // 3600), M = string.format("%02d", rem % 3600 // 60),
    S = string.format("%02d", rem % 60),
  }
  return (fmt:gsub("%%(%a)", function(c) return f[c] or ("%" .. c) end))
end

-- pairs() in a fixed order. Lua seeds its string hashing per process, so the plain pairs() of
-- one run and of its replay or resume can visit keys in different orders — and a runbook that
-- calls effects inside the loop would then take a different path. Here keys are visited numbers
-- first (ascending), then strings (byte order), then booleans; other keys (tables, functions)
-- last, in an order that is only stable within one process. A __pairs metamethod still wins.
do
  local next, type, tostring, sort, getmetatable = next, type, tostring, table.sort, getmetatable
  local rank = { number = 1, string = 2, boolean = 3 }
  local function before(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (rank[ta] or 4) < (rank[tb] or 4) end
    if ta == "number" or ta == "string" then return a < b end
    if ta == "boolean" then return not a and b end
    return tostring(a) < tostring(b)
  end
  function pairs(t)
    local mt = getmetatable(t)
    if type(mt) == "table" and mt.__pairs then return mt.__pairs(t) end
    if type(t) ~= "table" then error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2) end
    local keys, n = {}, 0
    for k in next, t do n = n + 1; keys[n] = k end
    sort(keys, before)
    local i = 0
    return function()
      while true do
        i = i + 1
        local k = keys[i]
        if k == nil then return nil end
        local v = t[k]
        if v ~= nil then return k, v end  -- skip keys removed during the loop
      end
    end, t, nil
  end
end
