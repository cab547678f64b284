-- runbook.util: what the other stdlib modules are built on, for a team's own modules too:
-- checking a call's named arguments against a declaration (the errors name the call and the
-- argument) and reading durations ("30s", "1h30m"). Pure: no effect, nothing journaled.
--
--   local util = require "runbook.util"
--   local a = util.check_args{ call = "myteam.deploy", args = args, spec = {
--     { name = "url", type = "url", required = true },
--     { name = "timeout", type = "duration", default = "30s" } } }
local M = {}

local UNITS = { ms = 0.001, s = 1, m = 60, h = 3600 }

-- Seconds in a duration ("500ms", "30s", "5m", "1h30m"; a number, or a string that is only a
-- number, is seconds), or nil when it is not one. Strict, as the primitives read durations:
-- every character must belong to a number and its unit.
local function parse_duration(v)
  if math.type(v) ~= nil then
    if v ~= v or v < 0 or v == math.huge then return nil end
    return v
  end
  if type(v) ~= "string" or #v == 0 or #v > 64 then return nil end
  if v:match("^%d+%.?%d*$") then return tonumber(v) end
  local total, pos = 0, 1
  while pos <= #v do
    local num, unit, after = v:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num or not UNITS[unit] then return nil end
    total = total + tonumber(num) * UNITS[unit]
    pos = after
  end
  return total
end

local function is_url(v)
  return type(v) == "string" and #v <= 8192 and v:match("^https?://[^%s/?#]+") ~= nil and not v:find("%s")
end

local function is_list(v, each)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in next, v do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  if each then
    for i = 1, n do if not each(v[i]) then return false end end
  end
  return true
end

-- type name -> { what is expected (for the message), the check }.
local TYPES = {
  any = { "a value", function(v) return v ~= nil end },
  string = { "string", function(v) return type(v) == "string" end },
  number = { "number", function(v) return type(v) == "number" and v == v end },
  integer = { "integer", function(v) return math.type(v) == "integer" end },
  boolean = { "boolean", function(v) return type(v) == "boolean" end },
  table = { "table", function(v) return type(v) == "table" end },
  ["function"] = { "function", function(v) return type(v) == "function" end },
  map = { "table of name = value", function(v)
    if type(v) ~= "table" then return false end
    for k in next, v do if type(k) ~= "string" then return false end end
    return true
  end },
  path = { "path", function(v) return type(v) == "string" and #v > 0 and #v <= 4096 and not v:find("%z") end },
  url = { "URL", is_url },
  duration = { "duration like \"30s\"", function(v) return parse_duration(v) ~= nil end },
  ["list of strings"] = { "list of strings", function(v)
    return is_list(v, function(x) return type(x) == "string" end)
  end },
  ["list of URLs"] = { "list of URLs", function(v) return is_list(v, is_url) end },
}
M._types = TYPES

local function got(v)
  if type(v) == "string" then
    local s = #v > 40 and (v:sub(1, 40) .. "...") or v
    return "string '" .. s:gsub("[%c]", "?") .. "'"
  end
  if v == nil then return "no value" end
  if type(v) == "table" and next(v) == nil then return "an empty table" end
  return type(v)
end

-- The closest declared name to an unknown one (edit distance at most 2), for "did you mean".
local function nearest(name, spec)
  local best, best_d = nil, 3
  for _, a in ipairs(spec) do
    local s, t = name, a.name
    if math.abs(#s - #t) < best_d and #s <= 64 then
      local prev = {}
      for j = 0, #t do prev[j] = j end
      for i = 1, #s do
        local cur = { [0] = i }
        for j = 1, #t do
          local cost = s:byte(i) == t:byte(j) and 0 or 1
          cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev = cur
      end
      if prev[#t] < best_d then best, best_d = t, prev[#t] end
    end
  end
  return best
end

local function fail(level, msg) error(msg, level + 2) end

M.__api = {
  module = "runbook.util",
  doc = "Checking a call's named arguments and reading durations: what the other stdlib modules are built on, " ..
        "for a team's own modules too. Pure: no effect, nothing journaled.",
  functions = {
    {
      name = "check_args",
      call = "util.check_args{ call = \"myteam.deploy\", args = args, spec = { { name = \"url\", type = \"url\", required = true } } }",
      doc = "Checks the named-argument table a function was called with against its declaration and returns a copy " ..
            "with the defaults filled in. Raises `CALL: bad argument 'NAME' (TYPE expected, got ...)` for a missing or " ..
            "ill-typed argument and `CALL: unknown argument 'NAME' (did you mean 'OTHER'?)` for a misspelled one, " ..
            "pointing at the caller's line. Types: any, string, number, integer, boolean, table, function, map, path, " ..
            "url, duration, list of strings, list of URLs; a `check` function(value) -> ok, why may refine one.",
      args = {
        { name = "call", type = "string", required = true, doc = "the function's name as the user writes it: \"checks.endpoints\"" },
        { name = "args", type = "any", required = true, doc = "what the function was called with (anything: it is checked)" },
        { name = "spec", type = "list", required = true, doc = "the declared arguments: { name =, type =, required =, default =, check = }" },
        { name = "level", type = "integer", required = false, default = 1,
          doc = "which call the error points at: 1 is the caller of the function that called check_args" },
      },
      returns = "the arguments with defaults filled in (a new table)",
      results = {},
    },
    {
      name = "seconds",
      call = "util.seconds{ duration = \"1h30m\" }",
      doc = "The seconds in a duration as the primitives read them: \"500ms\", \"30s\", \"5m\", \"1h30m\" (a number " ..
            "is taken as seconds). Strict: \"30 s\", \"2d\" or \"soon\" is an error naming the call and the value.",
      args = {
        { name = "duration", type = "duration", required = true, doc = "the duration" },
        { name = "call", type = "string", required = false, doc = "what to name in an error (default util.seconds)" },
        { name = "name", type = "string", required = false, doc = "the argument to name in an error (default duration)" },
      },
      returns = "number of seconds",
      results = {},
    },
  },
}

function M.check_args(o)
  if type(o) ~= "table" then fail(1, "util.check_args: bad argument #1 (a table of named arguments expected, got " .. got(o) .. ")") end
  local call, args, spec, level = o.call, o.args, o.spec, o.level or 1
  if type(call) ~= "string" then fail(1, "util.check_args: bad argument 'call' (string expected, got " .. got(call) .. ")") end
  if type(spec) ~= "table" then fail(1, "util.check_args: bad argument 'spec' (list expected, got " .. got(spec) .. ")") end
  if math.type(level) ~= "integer" or level < 1 then
    fail(1, "util.check_args: bad argument 'level' (integer expected, got " .. got(level) .. ")")
  end
  level = level + 1  -- the frame of the function that called check_args
  if type(args) ~= "table" then
    fail(level, call .. ": bad argument #1 (a table of named arguments expected, got " .. got(args) .. ")")
  end
  local known = {}
  for _, a in ipairs(spec) do known[a.name] = a end
  for k in next, args do
    if type(k) ~= "string" then
      fail(level, call .. ": bad argument #1 (named arguments expected, got a list item at [" .. tostring(k) .. "])")
    end
    if not known[k] then
      local near = nearest(k, spec)
      fail(level, call .. ": unknown argument '" .. k .. "'" .. (near and (" (did you mean '" .. near .. "'?)") or ""))
    end
  end
  local out = {}
  for _, a in ipairs(spec) do
    local v = args[a.name]
    if v == nil then
      if a.required then
        local ty = TYPES[a.type]
        fail(level, call .. ": bad argument '" .. a.name .. "' (" .. (ty and ty[1] or a.type) .. " expected, got no value)")
      end
      v = a.default
    else
      local ty = TYPES[a.type]
      if ty and not ty[2](v) then
        fail(level, call .. ": bad argument '" .. a.name .. "' (" .. ty[1] .. " expected, got " .. got(v) .. ")")
      end
      if a.check then
        local ok, why = a.check(v)
        if not ok then fail(level, call .. ": bad argument '" .. a.name .. "' (" .. tostring(why) .. ")") end
      end
    end
    out[a.name] = v
  end
  return out
end

function M.seconds(o)
  if type(o) ~= "table" then fail(1, "util.seconds: bad argument #1 (a table of named arguments expected, got " .. got(o) .. ")") end
  local call, name = o.call or "util.seconds", o.name or "duration"
  local s = parse_duration(o.duration)
  if not s then
    fail(1, call .. ": bad argument '" .. name .. "' (duration like \"30s\" expected, got " .. got(o.duration) .. ")")
  end
  return s
end

-- For the modules: the declared args of each function of an __api, by name, for check_args.
-- An arg's `check` function moves from the __api into these copies, so that the __api stays
-- plain data (strings, booleans, numbers and tables of them) for `runbook api` to print.
function M._specs(api)
  local out, checked = {}, {}
  for _, f in ipairs(api.functions) do
    local list = {}
    for i, a in ipairs(f.args) do
      local c = {}
      for k, v in next, a do c[k] = v end
      list[i] = c
      if a.check ~= nil then checked[#checked + 1] = a end
    end
    out[f.name] = list
  end
  for _, a in ipairs(checked) do a.check = nil end
  return out
end

M._parse_duration = parse_duration
M._got = got

return M
