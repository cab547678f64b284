-- The engine-specific checks of `runbook lint`, run by lua5.1 with luacheck's own parser (exact
-- positions, Lua 5.4 syntax). `runbook lint` (engine/cli/lint.cc) runs it as a child process:
--   lua5.1 analyse.lua DATA FILE
-- DATA is a Lua chunk the engine generates from its registry and sandbox (so it cannot drift):
--   return { primitives = { ["fs.backup"] = { kind = "change", args = {...}, positional = {...},
--              results = {...} or false, map = bool } }, globals = { fs = { "backup", ... },
--              exec = false, ... } }
-- Prints one finding a line: LINE <tab> COLUMN <tab> error|warning <tab> CODE <tab> MESSAGE.
-- Generic Lua checks (undefined globals, unused locals) are luacheck's own, run separately.
local parser = require "luacheck.parser"
local decoder = require "luacheck.decoder"

local data_file, src_file = arg[1], arg[2]
local data = assert(loadfile(data_file))()
local fh = assert(io.open(src_file, "rb"))
local src = fh:read("*a")
fh:close()
if #src > 8 * 1024 * 1024 then
  io.write("1\t1\terror\tL000\tfile larger than 8 MiB\n")
  return
end
-- A UTF-8 byte-order mark and a first #! line are allowed in a runbook; keep positions.
if src:sub(1, 3) == "\239\187\191" then src = "   " .. src:sub(4) end
if src:sub(1, 2) == "#!" then src = "--" .. src:sub(3) end

local ok, ast, _, _, _, _, line_offsets = pcall(parser.parse, decoder.decode(src))
if not ok then
  -- luacheck reports a syntax error itself (E011); anything else is this script's bug.
  if type(ast) == "table" and ast.msg then return end
  error(ast, 0)
end

local findings = {}
local function col_of(node)
  local lo = line_offsets[node.line] or 1
  return (node.offset or lo) - lo + 1
end
local function report(node, severity, code, msg)
  findings[#findings + 1] = { line = node.line or 1, col = col_of(node), severity = severity,
                              code = code, msg = msg }
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- Levenshtein distance, bounded: names are short.
local function distance(a, b)
  if #a > 64 or #b > 64 then return math.huge end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end
local function nearest(name, candidates, prefix)
  local best, bestd = nil, math.huge
  for _, c in ipairs(candidates) do
    local d = distance(name, c)
    if d < bestd or (d == bestd and best and c < best) then best, bestd = c, d end
  end
  if best and bestd <= math.max(2, math.floor(#name / 3)) then
    return ": did you mean '" .. (prefix or "") .. best .. "'?"
  end
  return ""
end

local prims = data.primitives
local globals = data.globals
local modules = {}  -- module names that hold primitives
for name in pairs(prims) do
  local m = name:match("^([%w_]+)%.")
  if m then modules[m] = true end
end
local generic_results = { ok = true, error = true, planned = true, verified = true, value = true }
local backup_effects = { ["fs.backup"] = true, ["pg.dump"] = true, ["sqlite.backup"] = true,
                         ["git.stash"] = true, ["git.tag"] = true, ["git.branch"] = true,
                         ["pip.freeze"] = true, ["fs.copy"] = true }

-- Scopes: a chain of tables, name -> info ({ prim = "git.head" } for a local holding a result,
-- { params = true } for a step function's parameter table, {} otherwise).
local function new_scope(parent) return setmetatable({}, { __index = parent }) end
local function resolve(scope, name) return scope[name] end

-- Fields the runbook itself adds to a global table (function time.format ...).
local added_fields = {}

-- Declared parameters: from runbook{ params = { name = {...} } }; nil when not known.
local declared_params
local calls = {}  -- every primitive call in source order: { name, node, args }

local function string_value(node)
  if node and node.tag == "String" then return node[1] end
end

-- The primitive a callee expression names (fs.backup, exec), or nil.
local function prim_of(callee, scope)
  if not callee then return nil end
  if callee.tag == "Id" and not resolve(scope, callee[1]) and prims[callee[1]] then
    return callee[1]
  end
  if callee.tag == "Index" and callee[1].tag == "Id" and not resolve(scope, callee[1][1]) then
    local key = string_value(callee[2])
    if key and prims[callee[1][1] .. "." .. key] then return callee[1][1] .. "." .. key end
  end
end

local shells = { sh = true, bash = true, dash = true, zsh = true, ksh = true, ash = true }
local function basename(s) return (s:match("([^/]+)$") or s) end

local function check_table_items(t)
  -- The array part of a table constructor: { "sh", "-c", ... } and { "pkill", ... }.
  local items = {}
  for _, item in ipairs(t) do
    if item.tag ~= "Pair" then items[#items + 1] = item end
  end
  for i, item in ipairs(items) do
    local s = string_value(item)
    if s then
      local b = basename(s)
      local nxt = string_value(items[i + 1])
      if shells[b] and nxt and nxt:match("^%-%a*c%a*$") then
        report(item, "warning", "R010", "shell string ('" .. s .. " " .. nxt ..
               "'): exec runs argv without a shell; pass the program and its arguments as a list")
      end
      if i == 1 and (b == "pkill" or b == "killall") then
        report(item, "warning", "R011", b .. " signals every process whose name matches, "
               .. "others' too: use proc.signal{ ... } (by pidfile, port or cmdline)")
      end
    end
  end
end

local function check_string(node)
  local s = node[1]
  if #s > 65536 then return end
  local l = s:lower()
  if l:match("%f[%w]b?a?sh%s+%-%a*c%f[%A]") or l:match("%f[%w]dash%s+%-c%f[%A]") then
    report(node, "warning", "R010", "shell string: run the program by argv (exec{ \"prog\", \"arg\" }), "
           .. "not through 'sh -c'")
  end
  if l:match("^%s*pkill%s") or l:match("^%s*killall%s") then
    report(node, "warning", "R011", "pkill/killall signal every process whose name matches: "
           .. "use proc.signal{ ... }")
  end
end

local function destructive(name, call)
  -- Returns a description when the call destroys data, else nil.
  local named = {}
  local positional = prims[name].positional or {}
  local pos = 0
  for i = 2, #call do
    local a = call[i]
    if a.tag == "Table" then
      for _, item in ipairs(a) do
        if item.tag == "Pair" and string_value(item[1]) then named[item[1][1]] = item[2] end
      end
    else
      pos = pos + 1
      if positional[pos] then named[positional[pos]] = a end
    end
  end
  if name == "git.reset" then
    local h = named.hard
    if h and h.tag == "True" then return "git.reset{ hard = true }" end
  elseif name == "git.clean" or name == "redis.flush" then
    return name
  elseif name == "fs.remove" then
    return "fs.remove"
  elseif name == "pg.exec" or name == "pg.script" then
    local sql = string_value(named.sql)
    if sql and #sql <= 1048576 then
      local u = sql:upper()
      for _, w in ipairs({ "DROP", "DELETE", "TRUNCATE" }) do
        if u:match("%f[%w_]" .. w .. "%f[^%w_]") then return w .. " in " .. name end
      end
    end
  end
end

local walk_block, walk_expr

local function check_call(node, scope)
  local callee = node[1]
  local name = prim_of(callee, scope)
  if name then
    local p = prims[name]
    calls[#calls + 1] = { name = name, node = node }
    local args = set_of(p.args)
    for i = 2, #node do
      local a = node[i]
      if a.tag == "Table" then
        for _, item in ipairs(a) do
          if item.tag == "Pair" then
            local key = string_value(item[1])
            if key and not args[key] then
              report(item[1], "error", "R002", "unknown argument '" .. key .. "' to '" .. name .. "'"
                     .. nearest(key, p.args))
            end
          end
        end
      end
    end
  end
  -- runbook{ params = { ... } }
  if callee.tag == "Id" and callee[1] == "runbook" and not resolve(scope, "runbook") then
    local t = node[2]
    if t and t.tag == "Table" then
      local found = false
      for _, item in ipairs(t) do
        if item.tag == "Pair" and string_value(item[1]) == "params" then
          found = true
          local ps = item[2]
          if ps.tag == "Table" then
            declared_params = {}
            for _, pi in ipairs(ps) do
              if pi.tag == "Pair" and string_value(pi[1]) then
                declared_params[#declared_params + 1] = pi[1][1]
              else
                declared_params = false  -- not a plain list of names: not checked
                break
              end
            end
          else
            declared_params = false
          end
        end
      end
      if not found then declared_params = {} end
    end
  end
end

-- Marks the first parameter of a step's function as the parameter table.
local function step_function(node, scope)
  local callee = node[1]
  if not (callee.tag == "Id" and callee[1] == "step" and not resolve(scope, "step")) then return end
  local fn
  if node[3] and node[3].tag == "Function" then fn = node[3] end
  if node[2] and node[2].tag == "Table" then
    for _, item in ipairs(node[2]) do
      if item.tag == "Pair" and string_value(item[1]) == "run" and item[2].tag == "Function" then
        fn = item[2]
      end
    end
  end
  if fn then fn.is_step = true end
end

local function check_index(node, scope)
  local base, key = node[1], string_value(node[2])
  if not key or base.tag ~= "Id" then return end
  local info = resolve(scope, base[1])
  if info then
    if info.params and declared_params then
      local known = set_of(declared_params)
      if not known[key] then
        report(node[2], "error", "R003", "parameter '" .. key .. "' is not declared in runbook{ params = ... }"
               .. nearest(key, declared_params, base[1] .. "."))
      end
    elseif info.prim then
      local p = prims[info.prim]
      if p.results and not p.map and not generic_results[key] then
        local known = set_of(p.results)
        if not known[key] then
          report(node[2], "error", "R004", "'" .. info.prim .. "' returns no field '" .. key .. "'"
                 .. nearest(key, p.results, base[1] .. "."))
        end
      end
    end
    return
  end
  local fields = globals[base[1]]
  if type(fields) == "table" then
    local known = set_of(fields)
    if not known[key] and not (added_fields[base[1]] or {})[key] then
      local cands = {}
      for _, f in ipairs(fields) do cands[#cands + 1] = f end
      if modules[base[1]] then
        report(node, "error", "R001", "unknown primitive '" .. base[1] .. "." .. key .. "'"
               .. nearest(key, cands, base[1] .. "."))
      else
        report(node, "error", "R001", "unknown field '" .. base[1] .. "." .. key .. "'"
               .. nearest(key, cands, base[1] .. "."))
      end
    end
  end
end

local function declare(scope, id, info)
  if id and id.tag == "Id" then rawset(scope, id[1], info or {}) end
end

local depth = 0
function walk_expr(node, scope)
  if type(node) ~= "table" then return end
  depth = depth + 1
  if depth > 400 then depth = depth - 1; return end
  local tag = node.tag
  if tag == "Function" then
    local inner = new_scope(scope)
    for i, prm in ipairs(node[1]) do
      declare(inner, prm, (i == 1 and node.is_step) and { params = true } or {})
    end
    walk_block(node[2], inner)
  elseif tag == "Call" or tag == "Invoke" then
    if tag == "Call" then
      step_function(node, scope)
      check_call(node, scope)
    end
    for i = 1, #node do walk_expr(node[i], scope) end
  elseif tag == "Index" then
    check_index(node, scope)
    walk_expr(node[1], scope)
    walk_expr(node[2], scope)
  elseif tag == "String" then
    check_string(node)
  elseif tag == "Table" then
    check_table_items(node)
    for _, item in ipairs(node) do
      if item.tag == "Pair" then
        walk_expr(item[1], scope)
        walk_expr(item[2], scope)
      else
        walk_expr(item, scope)
      end
    end
  elseif tag == "Id" or tag == "Number" or tag == "Nil" or tag == "True" or tag == "False"
      or tag == "Dots" then
    -- nothing
  else
    for i = 1, #node do walk_expr(node[i], scope) end
  end
  depth = depth - 1
end

local function is_sleep(stat, scope)
  return stat.tag == "Call" and stat[1].tag == "Id" and stat[1][1] == "sleep"
    and not resolve(scope, "sleep")
end

-- Whether a statement checks something: a probe call, an if, an assert.
local function checks(stat, scope)
  if stat.tag == "If" then return true end
  local found = false
  local function scan(n, d)
    if found or type(n) ~= "table" or d > 50 then return end
    if n.tag == "Call" then
      local name = prim_of(n[1], scope)
      if name and (prims[name].kind == "probe") then found = true end
      if n[1].tag == "Id" and n[1][1] == "assert" then found = true end
    end
    if n.tag == "Function" then return end
    for i = 1, #n do scan(n[i], d + 1) end
  end
  scan(stat, 0)
  return found
end

local function walk_stat(stat, scope, block, i)
  local tag = stat.tag
  if tag == "Local" then
    local lhs, rhs = stat[1], stat[2]
    if rhs then for _, e in ipairs(rhs) do walk_expr(e, scope) end end
    for k, id in ipairs(lhs) do
      local info = {}
      local e = rhs and rhs[k]
      if e and e.tag == "Call" and #rhs == k then
        info.prim = prim_of(e[1], scope)
      end
      declare(scope, id, info)
    end
  elseif tag == "Localrec" then
    declare(scope, stat[1][1], {})
    walk_expr(stat[2][1], scope)
  elseif tag == "Set" then
    for _, e in ipairs(stat[2]) do walk_expr(e, scope) end
    for _, target in ipairs(stat[1]) do
      if target.tag == "Id" then
        local info = resolve(scope, target[1])
        if info then info.prim = nil; info.params = nil end
      elseif target.tag == "Index" then
        local base, key = target[1], string_value(target[2])
        if base.tag == "Id" and key and not resolve(scope, base[1]) then
          -- function fs.helper() ... end: not a read
          added_fields[base[1]] = added_fields[base[1]] or {}
          added_fields[base[1]][key] = true
          walk_expr(target[2], scope)
        else
          walk_expr(target, scope)
        end
      end
    end
  elseif tag == "Do" then
    walk_block(stat, new_scope(scope))
  elseif tag == "While" then
    walk_expr(stat[1], scope)
    walk_block(stat[2], new_scope(scope))
  elseif tag == "Repeat" then
    local inner = new_scope(scope)
    walk_block(stat[1], inner)
    walk_expr(stat[2], inner)
  elseif tag == "If" then
    for k = 1, #stat, 2 do
      if stat[k + 1] then
        walk_expr(stat[k], scope)
        walk_block(stat[k + 1], new_scope(scope))
      else
        walk_block(stat[k], new_scope(scope))
      end
    end
  elseif tag == "Fornum" then
    for k = 2, #stat - 1 do walk_expr(stat[k], scope) end
    local inner = new_scope(scope)
    declare(inner, stat[1], {})
    walk_block(stat[#stat], inner)
  elseif tag == "Forin" then
    for _, e in ipairs(stat[2]) do walk_expr(e, scope) end
    local inner = new_scope(scope)
    for _, id in ipairs(stat[1]) do declare(inner, id, {}) end
    walk_block(stat[3], inner)
  else
    if is_sleep(stat, scope) and block[i + 1] and checks(block[i + 1], scope) then
      report(stat, "warning", "R012", "a fixed sleep followed by a check: poll instead "
             .. "(wait.until{ ... }, http.wait_healthy, service.start's health wait)")
    end
    if tag == "Call" or tag == "Invoke" then
      walk_expr(stat, scope)
    else
      for k = 1, #stat do walk_expr(stat[k], scope) end
    end
  end
end

local block_depth = 0
function walk_block(block, scope)
  block_depth = block_depth + 1
  if block_depth <= 200 then
    for i, stat in ipairs(block) do walk_stat(stat, scope, block, i) end
  end
  block_depth = block_depth - 1
end

-- Parameters are declared before steps read them in the usual layout, but a runbook may call
-- runbook{} anywhere at the top level: find it first.
for _, stat in ipairs(ast) do
  if stat.tag == "Call" and stat[1].tag == "Id" and stat[1][1] == "runbook" then
    check_call(stat, {})
  end
end
local declared_first = declared_params
calls = {}
walk_block(ast, new_scope(nil))
declared_params = declared_first

-- Destructive calls with no backup effect before them in the file.
local first_backup
for _, c in ipairs(calls) do
  if backup_effects[c.name] then
    if not first_backup or c.node.offset < first_backup then first_backup = c.node.offset end
  end
end
for _, c in ipairs(calls) do
  local what = destructive(c.name, c.node)
  if what and not (first_backup and first_backup < c.node.offset) then
    report(c.node, "warning", "R013", what .. " with no backup before it in the runbook "
           .. "(fs.backup, pg.dump, sqlite.backup, git.tag, git.branch, git.stash first)")
  end
end

table.sort(findings, function(a, b)
  if a.line ~= b.line then return a.line < b.line end
  return a.col < b.col
end)
for _, f in ipairs(findings) do
  io.write(f.line, "\t", f.col, "\t", f.severity, "\t", f.code, "\t", (f.msg:gsub("[\t\n]", " ")), "\n")
end
