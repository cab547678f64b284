-- `require "runbook.test"`: what a test file (`*_test.lua`, run by `runbook test`) writes its
-- cases with. The runs themselves are the engine's (runbook.test_native, only in a test file's
-- interpreter): a runbook under test is loaded and run as live, except that no effect acts.
local native = require "runbook.test_native"

local t = {}

-- t.fail(msg) / t.timeout(): a fake that makes the effect fail, or time out as at a deadline.
local FAKE = {}
-- An assertion's failure: where (file:line of the assertion) and what differed.
local FAILURE = { __tostring = function(f) return f.where .. ": " .. f.message end }
native.init(FAKE, FAILURE)

local MAX_DEPTH = 100

local function repr(v, depth, budget)
  depth = depth or 0
  budget = budget or { n = 60 }
  local ty = type(v)
  if ty == "string" then return string.format("%q", v) end
  if ty ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts, n = {}, #v
  for _, k in ipairs(keys) do
    budget.n = budget.n - 1
    if budget.n < 0 then parts[#parts + 1] = "..."; break end
    local kv = repr(v[k], depth + 1, budget)
    if math.type(k) == "integer" and k >= 1 and k <= n then parts[#parts + 1] = kv
    elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then parts[#parts + 1] = k .. " = " .. kv
    else parts[#parts + 1] = "[" .. repr(k, depth + 1, budget) .. "] = " .. kv end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
t.repr = repr

local function fail(message)
  error(setmetatable({ message = message, where = native.where() }, FAILURE), 0)
end

local function path_of(path, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. repr(k) .. "]"
end

-- The first place two values differ, or nil: (path, actual, expected).
local function differ(a, b, path, depth)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then return path, a, b end
  if depth > MAX_DEPTH then return path .. " (nested deeper than 100 levels)", a, b end
  for k, bv in pairs(b) do
    local p, x, y = differ(a[k], bv, path_of(path, k), depth + 1)
    if p then return p, x, y end
  end
  for k, av in pairs(a) do
    if b[k] == nil then return path_of(path, k), av, nil end
  end
  return nil
end

-- `expected` is a part of `actual`: its keys have equal values (tables: the same, recursively;
-- lists: the same length).
local function subset(expected, actual, depth)
  if type(expected) ~= "table" then return expected == actual end
  if type(actual) ~= "table" or depth > MAX_DEPTH then return false end
  if #expected > 0 and #expected ~= #actual then return false end
  for k, v in pairs(expected) do
    if not subset(v, actual[k], depth + 1) then return false end
  end
  return true
end

function t.eq(actual, expected, what)
  local p, x, y = differ(actual, expected, "", 0)
  if not p then return end
  local prefix = what and (what .. ": ") or ""
  if p == "" then fail(prefix .. "expected " .. repr(expected) .. ", got " .. repr(actual)) end
  fail(prefix .. "at " .. p .. ": expected " .. repr(y) .. ", got " .. repr(x) ..
       " (expected " .. repr(expected) .. ", got " .. repr(actual) .. ")")
end

function t.ok(v, what)
  if not v then fail((what and (what .. ": ") or "") .. "expected a true value, got " .. repr(v)) end
end

local function effects_of(r, fn)
  if type(r) ~= "table" or type(r.effects) ~= "table" then
    error("bad argument #1 to '" .. fn .. "' (the result of t.run expected, got " .. type(r) .. ")", 3)
  end
  return r.effects
end

local function matching(r, name, args, fn)
  if type(name) ~= "string" then
    error("bad argument #2 to '" .. fn .. "' (an effect's name expected, got " .. type(name) .. ")", 3)
  end
  local found, same_name = nil, {}
  for _, e in ipairs(effects_of(r, fn)) do
    if e.name == name then
      if args == nil or subset(args, e.args, 0) then found = found or e end
      same_name[#same_name + 1] = e
    end
  end
  return found, same_name
end

function t.called(r, name, args)
  local found, same = matching(r, name, args, "t.called")
  if found then return found end
  if #same == 0 then
    local names = {}
    for i, e in ipairs(r.effects) do
      if i > 12 then names[#names + 1] = "..."; break end
      names[#names + 1] = e.name
    end
    fail(name .. " was never called (the calls: " ..
         (#names > 0 and table.concat(names, ", ") or "none") .. ")")
  end
  local seen = {}
  for i, e in ipairs(same) do
    if i > 3 then seen[#seen + 1] = "..."; break end
    seen[#seen + 1] = "#" .. tostring(e.seq) .. " " .. repr(e.args)
  end
  fail("no call of " .. name .. " with " .. repr(args) .. "; its calls: " .. table.concat(seen, "; "))
end

function t.not_called(r, name, args)
  local found = matching(r, name, args, "t.not_called")
  if found then
    fail(name .. " was called (effect #" .. tostring(found.seq) .. ", step " ..
         tostring(found.step) .. ") with " .. repr(found.args))
  end
end

function t.fail(message)
  if message ~= nil and type(message) ~= "string" then
    error("bad argument #1 to 't.fail' (string expected, got " .. type(message) .. ")", 2)
  end
  return setmetatable({ kind = "fail", message = message or "failed (t.fail)" }, FAKE)
end

function t.timeout()
  return setmetatable({ kind = "timeout" }, FAKE)
end

-- A fake answering the recorded results in order: the first call gets the first, and so on;
-- calls past the end get the last one.
function t.sequence(results)
  if type(results) ~= "table" or #results == 0 then
    error("bad argument #1 to 't.sequence' (a non-empty list of results expected)", 2)
  end
  local i = 0
  return function()
    i = i + 1
    return results[math.min(i, #results)]
  end
end

t.case = native.case
t.run = native.run
t.resume = native.resume

local function copy(opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

local function performed(r, into, run_no)
  for _, e in ipairs(r.effects) do
    if e.kind == "change" and (e.state == "done" or e.state == "failed") and
       (e.origin == "" or e.origin == "redone") then
      local prev = into[e.seq]
      if prev and prev.run ~= run_no then
        return "effect #" .. tostring(e.seq) .. " " .. e.name .. " " .. repr(e.args) ..
               " was performed twice"
      end
      into[e.seq] = { run = run_no }
    end
  end
end

-- Crashes the run before every change in turn, resumes it as `runbook resume` would (again with
-- redo when it stops at the change in doubt), and checks that no completed change is performed
-- twice and that the resumed run ends with the same calls and outcome as an uninterrupted one.
function t.crash_matrix(file, opts)
  if type(file) ~= "string" then
    error("bad argument #1 to 't.crash_matrix' (a runbook's path expected)", 2)
  end
  local base = t.run(file, opts)
  local problems, boundaries = {}, 0
  for _, b in ipairs(base.effects) do
    if b.kind == "change" then
      boundaries = boundaries + 1
      local o = copy(opts)
      o.crash_at = b.seq
      local r = t.run(file, o)
      local where = "crash before effect #" .. tostring(b.seq) .. " " .. b.name
      if r.outcome ~= "crashed" then
        problems[#problems + 1] = where .. ": the run did not reach it (" .. r.outcome .. ")"
      else
        local done, run_no = {}, 1
        local twice = performed(r, done, run_no)
        local fin = r
        for _ = 1, 4 do
          if twice then break end
          fin = t.resume(fin, { redo = fin.exit_code == 3 or nil })
          run_no = run_no + 1
          twice = performed(fin, done, run_no)
          if fin.exit_code ~= 3 then break end
        end
        if twice then
          problems[#problems + 1] = where .. ": " .. twice
        elseif fin.outcome ~= base.outcome then
          problems[#problems + 1] = where .. ": the resumed run ended " .. tostring(fin.outcome) ..
                                    ", the uninterrupted one " .. tostring(base.outcome)
        else
          local n = math.max(#fin.effects, #base.effects)
          for i = 1, n do
            local x, y = fin.effects[i], base.effects[i]
            if not x or not y or x.name ~= y.name or differ(x.args, y.args, "", 0) then
              problems[#problems + 1] = where .. ": call #" .. i .. " differs: " ..
                (x and (x.name .. " " .. repr(x.args)) or "none") .. " after the resume, " ..
                (y and (y.name .. " " .. repr(y.args)) or "none") .. " uninterrupted"
              break
            end
          end
        end
      end
    end
  end
  if #problems > 0 then
    fail("crash matrix: " .. #problems .. " of " .. boundaries .. " boundaries: " ..
         table.concat(problems, "; "))
  end
  return { boundaries = boundaries, outcome = base.outcome }
end


-- The reference of this module (`runbook api`, docs/api.md, `runbook api --luals`).
t.__api = {
  module = "runbook.test",
  doc = "Writing the cases of a *_test.lua file (run by `runbook test`): t.run runs a runbook as live, "
     .. "except that no effect touches the world: a faked effect answers with its fake, any other with "
     .. "its planned result, as in an offline dry-run.",
  functions = {
    { name = "case", call = 't.case("name", function() ... end)',
      doc = "Declares a case (at the test file's top level); each runs under the --timeout limit.",
      args = { { name = "name", type = "string", required = true, doc = "shown in the output" },
               { name = "fn", type = "function", required = true, doc = "the case: it fails when an assertion or an error is raised" } },
      returns = "nothing", results = {} },
    { name = "run", call = 't.run("rollback.lua", { params = {...}, fakes = {...} })',
      doc = "Runs a runbook (relative to the test file) with its effects faked, in a fresh interpreter and journal.",
      args = { { name = "file", type = "string", required = true, doc = "the runbook, relative to the test file" },
               { name = "opts", type = "table", required = false, doc = "the options below" },
               { name = "opts.params", type = "table", required = false, doc = "the parameters, name = value" },
               { name = "opts.fakes", type = "table", required = false,
                 doc = "effect name = a result table, a function of the arguments, t.fail(msg), t.timeout() or t.sequence{...}" },
               { name = "opts.crash_at", type = "integer", required = false, doc = "stop the run before effect n acts, as a SIGKILL would" } },
      returns = "the run, to assert on",
      results = { { name = "outcome", type = "string", doc = "succeeded, failed, error or crashed" },
                  { name = "exit_code", type = "integer", doc = "as runbook exec would exit" },
                  { name = "error", type = "string", doc = "the run's error, if any" },
                  { name = "steps", type = "list", doc = "{ index, name, attempt, outcome, error } per step attempt" },
                  { name = "logs", type = "list", doc = "{ level, message, step } per log line" },
                  { name = "effects", type = "list",
                    doc = "every call in order: { seq, name, kind, args, result, error, state, step, origin, site }" } } },
    { name = "resume", call = "t.resume(r, { redo = true })",
      doc = "Continues a crashed or failed run of t.run as `runbook resume` does.",
      args = { { name = "r", type = "table", required = true, doc = "the result of t.run (or t.resume)" },
               { name = "opts", type = "table", required = false, doc = "redo, assume_done (a change in doubt), fakes, params, crash_at" } },
      returns = "the resumed run, as t.run's", results = {} },
    { name = "crash_matrix", call = 't.crash_matrix("rollback.lua", opts)',
      doc = "Crashes before every change in turn and resumes; fails if a completed change would be performed "
         .. "twice or the resumed run's calls or outcome differ from an uninterrupted run's.",
      args = { { name = "file", type = "string", required = true, doc = "the runbook" },
               { name = "opts", type = "table", required = false, doc = "as t.run's" } },
      returns = "a table",
      results = { { name = "boundaries", type = "integer", doc = "how many changes were crashed before" },
                  { name = "outcome", type = "string", doc = "the uninterrupted run's outcome" } } },
    { name = "eq", call = "t.eq(actual, expected [, what])",
      doc = "Deep equality; the failure names the first path that differs.",
      args = { { name = "actual", type = "any", required = true, doc = "" },
               { name = "expected", type = "any", required = true, doc = "" },
               { name = "what", type = "string", required = false, doc = "a prefix for the message" } },
      returns = "nothing", results = {} },
    { name = "ok", call = "t.ok(v [, what])", doc = "Fails unless v is a true value.",
      args = { { name = "v", type = "any", required = true, doc = "" },
               { name = "what", type = "string", required = false, doc = "a prefix for the message" } },
      returns = "nothing", results = {} },
    { name = "called", call = 't.called(r, "git.checkout", { ref = "last-good" })',
      doc = "Fails unless the run called the effect (with arguments that contain args: a subset match).",
      args = { { name = "r", type = "table", required = true, doc = "the result of t.run" },
               { name = "name", type = "string", required = true, doc = "the effect's name" },
               { name = "args", type = "table", required = false, doc = "arguments the call must have" } },
      returns = "the first matching call (an entry of r.effects)", results = {} },
    { name = "not_called", call = 't.not_called(r, "git.reset" [, args])',
      doc = "Fails if the run called the effect (with arguments that contain args).",
      args = { { name = "r", type = "table", required = true, doc = "the result of t.run" },
               { name = "name", type = "string", required = true, doc = "the effect's name" },
               { name = "args", type = "table", required = false, doc = "only calls with these arguments count" } },
      returns = "nothing", results = {} },
    { name = "fail", call = 't.fail("not healthy")',
      doc = "A fake that makes the effect fail with this message, exactly as live (try, check = false and retries see it).",
      args = { { name = "message", type = "string", required = false, doc = "the failure's message" } },
      returns = "a fake", results = {} },
    { name = "timeout", call = "t.timeout()", doc = "A fake that stops the step as at its deadline.",
      args = {}, returns = "a fake", results = {} },
    { name = "sequence", call = "t.sequence({ r1, r2, ... })",
      doc = "A fake answering the results in order; calls past the end get the last one.",
      args = { { name = "results", type = "list", required = true, doc = "a non-empty list of results" } },
      returns = "a fake (a function)", results = {} },
    { name = "repr", call = "t.repr(v)", doc = "A short, stable text of a value (as the failure messages show it).",
      args = { { name = "v", type = "any", required = true, doc = "" } },
      returns = "string", results = {} },
  },
}

return t
