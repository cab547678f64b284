-- Every stdlib module documents what it exports (M.__api), in the convention `runbook api` prints.
local t = require "runbook.test"

local MODULES = { "runbook.checks", "runbook.monitor", "runbook.metrics", "runbook.files", "runbook.notify",
                  "runbook.util" }

for _, name in ipairs(MODULES) do
  t.case(name .. " documents every exported function", function()
    local M = require(name)
    t.eq(type(M.__api), "table", name .. ".__api")
    t.eq(M.__api.module, name)
    t.ok(type(M.__api.doc) == "string" and #M.__api.doc > 20, name .. " has a module doc")
    local documented = {}
    for _, f in ipairs(M.__api.functions) do
      t.ok(type(f.name) == "string", "a function entry has a name")
      t.eq(type(M[f.name]), "function", name .. "." .. f.name .. " is documented but not a function")
      t.ok(type(f.call) == "string" and #f.call > 0, f.name .. ": call")
      t.ok(type(f.doc) == "string" and #f.doc > 10, f.name .. ": doc")
      t.ok(type(f.returns) == "string", f.name .. ": returns")
      t.eq(type(f.args), "table", f.name .. ": args")
      t.eq(type(f.results), "table", f.name .. ": results")
      for _, a in ipairs(f.args) do
        t.ok(type(a.name) == "string" and type(a.type) == "string" and type(a.doc) == "string",
             f.name .. ": an argument with name, type and doc")
        t.eq(type(a.required), "boolean", f.name .. "." .. a.name .. ": required")
      end
      for _, r in ipairs(f.results) do
        t.ok(type(r.name) == "string" and type(r.type) == "string" and type(r.doc) == "string",
             f.name .. ": a result with name, type and doc")
      end
      documented[f.name] = true
    end
    for k, v in pairs(M) do
      if type(v) == "function" and type(k) == "string" and k:sub(1, 1) ~= "_" then
        t.ok(documented[k], name .. "." .. k .. " is exported but not in __api")
      end
    end
  end)
end

t.case("util.check_args names the call and the argument", function()
  local util = require "runbook.util"
  local spec = { { name = "url", type = "url", required = true }, { name = "timeout", type = "duration", default = "5s" } }
  local a = util.check_args{ call = "x.y", args = { url = "http://h/" }, spec = spec }
  t.eq(a, { url = "http://h/", timeout = "5s" })
  local ok, err = pcall(util.check_args, { call = "x.y", args = { url = 3 }, spec = spec })
  t.eq(ok, false)
  t.ok(tostring(err):find("x.y: bad argument 'url' (URL expected, got number)", 1, true), err)
  ok, err = pcall(util.check_args, { call = "x.y", args = { urll = "http://h/" }, spec = spec })
  t.eq(ok, false)
  t.ok(tostring(err):find("x.y: unknown argument 'urll' (did you mean 'url'?)", 1, true), err)
  ok, err = pcall(util.check_args, { call = "x.y", args = "http://h/", spec = spec })
  t.eq(ok, false)
  t.ok(tostring(err):find("x.y: bad argument #1 (a table of named arguments expected, got string", 1, true), err)
end)

t.case("util.seconds reads durations as the primitives do, strictly", function()
  local util = require "runbook.util"
  t.eq(util.seconds{ duration = "1h30m" }, 5400)
  t.eq(util.seconds{ duration = "500ms" }, 0.5)
  t.eq(util.seconds{ duration = 7 }, 7)
  t.eq(util.seconds{ duration = "30" }, 30)
  for _, bad in ipairs({ "soon", "30 s", "2d", "", "-5s", "5s!" }) do
    local ok, err = pcall(util.seconds, { duration = bad, call = "monitor.watch", name = "interval" })
    t.eq(ok, false, bad)
    t.ok(tostring(err):find("monitor.watch: bad argument 'interval' (duration like \"30s\" expected", 1, true), err)
  end
end)

-- `runbook api` prints the __api tables: plain data, no functions in them.
t.case("every __api is plain data", function()
  local function plain(v, path, depth)
    local ty = type(v)
    if ty == "string" or ty == "number" or ty == "boolean" then return end
    t.eq(ty, "table", path)
    t.ok(depth < 10, path .. " nests too deep")
    for k, x in pairs(v) do plain(x, path .. "." .. tostring(k), depth + 1) end
  end
  for _, name in ipairs(MODULES) do plain(require(name).__api, name .. ".__api", 0) end
end)
