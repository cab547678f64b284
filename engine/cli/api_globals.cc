#include "cli/api_globals.h"

#include <lua.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "lua/convert.h"
#include "lua/runbook.h"
#include "lua/sandbox.h"
#include "os/files.h"

namespace fs = std::filesystem;

namespace rb::cli {
namespace {

DocEntry fn(std::string name, std::string source, std::string call, std::string summary,
            std::vector<DocArg> args = {}, std::string returns = "", std::vector<DocField> results = {}) {
  DocEntry e;
  e.name = std::move(name);
  e.kind = "function";
  e.source = std::move(source);
  e.call = std::move(call);
  e.summary = std::move(summary);
  e.args = std::move(args);
  e.returns = std::move(returns);
  e.results = std::move(results);
  return e;
}

DocEntry val(std::string name, std::string source, std::string type, std::string summary) {
  DocEntry e;
  e.name = std::move(name);
  e.kind = "value";
  e.source = std::move(source);
  e.type = std::move(type);
  e.summary = std::move(summary);
  return e;
}

DocEntry tbl(std::string name, std::string source, std::string summary) {
  DocEntry e;
  e.name = std::move(name);
  e.kind = "table";
  e.source = std::move(source);
  e.summary = std::move(summary);
  return e;
}

DocEntry absent(std::string name, std::string summary) {
  DocEntry e;
  e.name = std::move(name);
  e.kind = "absent";
  e.source = "sandbox";
  e.summary = std::move(summary);
  return e;
}

// A function of Lua's standard library, as the sandbox keeps it.
DocEntry lua(std::string name, std::string call, std::string summary, std::string returns = "") {
  return fn(std::move(name), "lua", std::move(call), std::move(summary), {}, std::move(returns));
}

std::vector<DocEntry> build() {
  std::vector<DocEntry> d;
  auto add = [&](DocEntry e) { d.push_back(std::move(e)); };

  // ---- declarations ------------------------------------------------------------------------
  add(fn("runbook", "sandbox", "runbook{ name = \"...\", version = \"1.0.0\", params = { ... } }",
         "Declares the runbook, once, at the top level of the file (an unknown field is an error).",
         {{"name", "string", true, "", "the runbook's name: letters, digits, '.', '_', '-'"},
          {"version", "string", true, "", "semver, like \"1.2.0\" (journaled with every run)"},
          {"summary", "string", false, "", "one line, shown by check and runs"},
          {"description", "string", false, "", "longer text"},
          {"owner", "string", false, "", "who to ask about it"},
          {"tags", "list", false, "", "a list of strings"},
          {"params", "table", false, "",
           "the parameters: name = { type = ..., ... } (see params.NAME); reading one that is not "
           "declared is an error"},
          {"lock", "string", false, "",
           "the lock key of a live run, with {param} placeholders (\"app:{root}\"); the default is "
           "the name plus the target = true parameters"}},
         "nothing"));
  {
    DocEntry p;
    p.name = "params.NAME";
    p.kind = "declaration";
    p.source = "sandbox";
    p.call = "params = { NAME = { type = \"path\", required = true, doc = \"...\" } }";
    p.summary =
        "A parameter of runbook{}: given with -p NAME=VALUE, --param-file or RUNBOOK_PARAM_NAME, "
        "converted to its type, and passed to each step function as the table p (p.NAME; nil "
        "when not given and without default).";
    p.args = {{"type", "string", false, "\"string\"",
               "string, int, number, bool (true/yes/1/on, false/no/0/off), path (absolute, "
               "normalised), url, duration (\"30s\"), list (comma-separated)"},
              {"required", "boolean", false, "false", "the run is refused without a value"},
              {"default", "any", false, "", "the value when none is given (checked against type and choices)"},
              {"secret", "boolean", false, "false",
               "redacted everywhere (journal, output, plans); not journaled, give it again to resume"},
              {"doc", "string", false, "", "what it is, shown by check and in errors"},
              {"choices", "list", false, "", "the allowed values, a non-empty list of strings"},
              {"target", "boolean", false, "false",
               "part of the default lock key: two live runs on the same target cannot overlap"}};
    add(p);
  }
  add(fn("step", "sandbox",
         "step(\"name\", function(p) ... end)  or  step{ \"name\", timeout = \"30s\", run = function(p) ... end }",
         "Declares a step, at the top level only; steps run in order, each with the parameters p. "
         "An error stops the run; the remaining steps are skipped except those with always = true.",
         {{"name", "string", true, "", "the step's name (also the first list item)"},
          {"run", "function", true, "", "the step function, called with the parameters table p"},
          {"timeout", "duration", false, "\"30m\"",
           "bounds the whole step, waits included; a runaway loop is stopped even inside pcall"},
          {"retries", "integer", false, "0", "re-runs of a failed step, 0 to 100 (a bug is not retried)"},
          {"retry_delay", "duration", false, "\"1s\"", "the wait before a retry, doubling each time (at most 24h)"},
          {"always", "boolean", false, "false",
           "runs even after an earlier step failed or Ctrl-C (cleanup, resume queues)"}},
         "nothing"));

  // ---- global functions ----------------------------------------------------------------------
  add(fn("require", "sandbox", "require \"name\"",
         "Loads a Lua source module once: NAME.lua beside the runbook, else from stdlib/ (\"runbook.test\", "
         "\"notice\", ...); dots are directories. Nothing else: no C modules, no binary chunks, no "
         "path outside those two directories (a symlink that leads out is refused). The journal "
         "records each module's SHA-256.",
         {{"name", "string", true, "", "letters, digits, '_', '-', '.'"}}, "the module's value (true when it returns nothing)"));
  add(fn("try", "prelude", "try(fn, handler)",
         "Runs fn; on an error calls handler(err) and returns its result (without a handler: nil, "
         "err). A stopped step (deadline, Ctrl-C) is not caught.",
         {{"fn", "function", true, "", "what to run"}, {"handler", "function", false, "", "called with the error"}},
         "fn's result, or handler's"));
  add(fn("print", "sandbox", "print(...)", "log.info under another name: the values, tab-separated, as an info line."));
  add(fn("pcall", "sandbox", "pcall(fn, ...)",
         "As Lua's, except that a stopped step (deadline, Ctrl-C, memory ceiling) cannot be caught.", {},
         "true and fn's results, or false and the error"));
  add(fn("xpcall", "sandbox", "xpcall(fn, handler, ...)",
         "As Lua's, except that a stopped step cannot be caught (the handler is not called then).", {},
         "true and fn's results, or false and the handler's result"));
  add(fn("load", "sandbox", "load(text [, chunkname [, mode [, env]]])",
         "Compiles Lua text (never a binary chunk); the environment defaults to the sandbox's globals.", {},
         "the function, or nil and the message"));
  add(fn("setmetatable", "sandbox", "setmetatable(t, mt)",
         "As Lua's, except that a __gc finalizer is refused (it would run outside the step's deadline).", {},
         "t"));
  add(fn("pairs", "prelude", "pairs(t)",
         "Iterates in a fixed order (numbers ascending, then strings, then booleans), so a replay "
         "takes the same path; a __pairs metamethod still wins.", {}, "an iterator"));
  add(lua("assert", "assert(v [, message])", "Raises message (the procedure failing: exit 1) unless v is true.", "v and the other arguments"));
  add(lua("error", "error(message [, level])", "Raises an error: the procedure fails (exit 1)."));
  add(lua("ipairs", "ipairs(t)", "Iterates t[1], t[2], ... up to the first nil.", "an iterator"));
  add(lua("next", "next(t [, key])", "The next key of t after key, and its value (in Lua's order).", "key, value"));
  add(lua("select", "select(n, ...)", "The arguments from the n-th on, or their count with \"#\"."));
  add(lua("getmetatable", "getmetatable(v)", "The metatable of v (or its __metatable field).", "a table or nil"));
  add(lua("rawequal", "rawequal(a, b)", "Equality without metamethods.", "boolean"));
  add(lua("rawget", "rawget(t, k)", "t[k] without metamethods (reads an undefined global as nil).", "the value"));
  add(lua("rawlen", "rawlen(v)", "The length without metamethods.", "integer"));
  add(lua("rawset", "rawset(t, k, v)", "t[k] = v without metamethods.", "t"));
  add(lua("tonumber", "tonumber(v [, base])", "A number from v, or nil.", "number or nil"));
  add(lua("tostring", "tostring(v)", "The text of v (its __tostring).", "string"));
  add(lua("type", "type(v)", "The type's name: \"nil\", \"number\", \"string\", \"table\", ...", "string"));
  add(val("_VERSION", "lua", "string", "\"Lua 5.4\""));
  add(val("_G", "sandbox", "table",
          "The globals table. Reading an undefined global is an error, not nil (a typo fails loudly); "
          "rawget(_G, name) tests for one."));

  // ---- run -----------------------------------------------------------------------------------
  add(tbl("run", "sandbox",
          "What this run is, for the runbook to read (plain data, set when the run starts; not "
          "there at the file's top level, while it is declared)."));
  add(val("run.id", "sandbox", "integer", "the run's id in the journal (the original's in a replay)"));
  add(val("run.name", "sandbox", "string", "the runbook's declared name"));
  add(val("run.version", "sandbox", "string", "the runbook's declared version"));
  add(val("run.mode", "sandbox", "string", "\"live\" (a resume too) or \"dry-run\"; a replay sees the original's mode (run.replay tells it is one)"));
  add(val("run.dry_run", "sandbox", "boolean", "true in a dry-run (changes are planned, not made)"));
  add(val("run.offline", "sandbox", "boolean", "true in a dry-run with --offline (probes do not run either)"));
  add(val("run.replay", "sandbox", "boolean", "true in a replay (every effect answered from the journal)"));
  add(val("run.test", "sandbox", "boolean", "true under runbook test (effects are faked)"));
  add(val("run.steps", "sandbox", "integer", "how many steps the runbook declares"));
  add(val("run.step", "sandbox", "integer", "the running step's number (1-based; 0 before the first)"));
  add(val("run.step_name", "sandbox", "string", "the running step's name"));
  add(val("run.started", "sandbox", "number", "when the run started, seconds since the epoch (journaled)"));
  add(val("run.failed", "sandbox", "table",
          "nil until a step failed; then { step, step_name, error, interrupted } of the first failure "
          "(for always = true steps)"));

  // ---- log, json -----------------------------------------------------------------------------
  add(tbl("log", "sandbox", "Lines in the run's output and journal (secrets redacted)."));
  add(fn("log.info", "sandbox", "log.info(...)", "An info line: the values, tab-separated (tostring each)."));
  add(fn("log.warn", "sandbox", "log.warn(...)", "A warning line."));
  add(fn("log.error", "sandbox", "log.error(...)", "An error line (it does not fail the step: error() does)."));
  add(fn("log.debug", "sandbox", "log.debug(...)", "A debug line (shown and journaled like info, marked debug)."));
  add(tbl("json", "sandbox", "JSON text to and from Lua values."));
  add(fn("json.encode", "sandbox", "json.encode(value [, pretty])",
         "The JSON text of a Lua value, object keys sorted (the same value always gives the same "
         "text). A table with keys 1..n is an array, one with string keys an object, an empty table "
         "{}; json.null is null. A table mixing both, a function, a cycle or a non-finite number is "
         "an error naming where it is.",
         {{"value", "any", true, "", "a string, number, boolean, table or json.null"},
          {"pretty", "boolean", false, "false", "indent by 2 spaces"}},
         "string"));
  add(fn("json.decode", "sandbox", "json.decode(text)",
         "The Lua value of a JSON text (null is nil: an object's null members are left out). A bad "
         "text fails the step (exit 1) with the position of the error.",
         {{"text", "string", true, "", "JSON"}}, "the value"));
  add(val("json.null", "sandbox", "userdata", "the JSON null for json.encode (a value distinct from nil, kept in tables)"));

  // ---- time, wait, env -------------------------------------------------------------------------
  add(tbl("time", "sandbox", "The clock, journaled: time.now() (a primitive) and time.format."));
  add(fn("time.format", "prelude", "time.format(t [, fmt])",
         "A UTC timestamp for names and logs, from time.now() (journaled, so a replay formats the same "
         "name): time.format(time.now(), \"%Y%m%d-%H%M%S\") gives \"20261124-031500\".",
         {{"t", "number", true, "", "seconds since the epoch"},
          {"fmt", "string", false, "\"%Y-%m-%dT%H:%M:%SZ\"", "%Y %m %d %H %M %S are replaced; other text is kept"}},
         "string"));
  add(tbl("wait", "prelude",
          "Polling for a state, with a deadline (poll, don't sleep). In a dry-run the condition is "
          "checked once and not waited for: the changes it waits on were not made."));
  // An argument named opts.FIELD is a field of the table argument opts.
  const std::vector<DocArg> wait_opts = {
      {"fn", "function", true, "", "the condition: called until it returns a true value"},
      {"opts", "table", false, "", "the options below"},
      {"opts.timeout", "duration", false, "\"60s\"", "how long to wait in all; then the step fails naming `what`"},
      {"opts.interval", "duration", false, "\"1s\"", "the first pause between calls; it grows by 1.5x up to 10s"},
      {"opts.what", "string", false, "\"the condition\"", "what is waited for, in the log and the error"}};
  add(fn("wait.until", "prelude", "wait[\"until\"](fn, { timeout = \"60s\", interval = \"1s\", what = \"...\" })",
         "Calls fn until it returns a true value. `until` is a Lua keyword: write wait[\"until\"] or "
         "its aliases wait.poll and wait.for_.",
         wait_opts, "fn's true value (true in a dry-run when the first call gave none)"));
  add(fn("wait.poll", "prelude", "wait.poll(fn, { timeout = \"60s\", interval = \"1s\", what = \"...\" })",
         "wait.until under a name that is not a keyword.", wait_opts, "fn's true value"));
  add(fn("wait.for_", "prelude", "wait.for_(fn, opts)", "wait.until under another name.", wait_opts, "fn's true value"));
  add(fn("wait.seconds", "prelude", "wait.seconds(d [, what])",
         "The number of seconds of a duration (\"1m30s\", \"500ms\"; a number is taken as seconds).",
         {{"d", "duration", true, "", "a duration string or a number"},
          {"what", "string", false, "", "what it is, for the error"}},
         "number"));
  add(tbl("env", "sandbox", "The process environment, read through env.get (a primitive: journaled, so a replay sees the same value)."));

  // ---- Lua's standard library, as allowed -----------------------------------------------------
  add(tbl("string", "lua",
          "Lua's string library, without string.dump; also the methods of strings (s:upper()). The "
          "pattern functions and rep have a step budget and the deadline."));
  add(lua("string.byte", "string.byte(s [, i [, j]])", "The byte codes of s[i..j].", "integers"));
  add(lua("string.char", "string.char(...)", "The string of these byte codes.", "string"));
  add(lua("string.find", "string.find(s, pattern [, init [, plain]])", "Where pattern first matches.", "start, end, captures, or nil"));
  add(lua("string.format", "string.format(fmt, ...)", "printf-style formatting (%d %s %q %x %f ...).", "string"));
  add(lua("string.gmatch", "string.gmatch(s, pattern)", "An iterator over the matches.", "an iterator"));
  add(lua("string.gsub", "string.gsub(s, pattern, repl [, n])", "Replaces matches (repl: string, table or function).", "string, count"));
  add(lua("string.len", "string.len(s)", "The length in bytes.", "integer"));
  add(lua("string.lower", "string.lower(s)", "Lower case.", "string"));
  add(lua("string.match", "string.match(s, pattern [, init])", "The captures of the first match.", "captures, or nil"));
  add(lua("string.rep", "string.rep(s, n [, sep])", "s repeated n times (within the memory ceiling).", "string"));
  add(lua("string.reverse", "string.reverse(s)", "s backwards.", "string"));
  add(lua("string.sub", "string.sub(s, i [, j])", "The substring s[i..j] (negative counts from the end).", "string"));
  add(lua("string.upper", "string.upper(s)", "Upper case.", "string"));
  add(lua("string.pack", "string.pack(fmt, ...)", "Binary packing.", "string"));
  add(lua("string.packsize", "string.packsize(fmt)", "The size of a pack format.", "integer"));
  add(lua("string.unpack", "string.unpack(fmt, s [, pos])", "Binary unpacking.", "values, next position"));
  add(tbl("table", "lua", "Lua's table library; move, insert, remove, concat and sort check the deadline."));
  add(lua("table.concat", "table.concat(t [, sep [, i [, j]]])", "The strings (or numbers) of t joined.", "string"));
  add(lua("table.insert", "table.insert(t, [pos,] v)", "Inserts v (at the end by default)."));
  add(lua("table.move", "table.move(a, f, e, t [, b])", "Copies a[f..e] to b[t..] (b defaults to a).", "b"));
  add(lua("table.pack", "table.pack(...)", "The arguments as a list with n.", "table"));
  add(lua("table.remove", "table.remove(t [, pos])", "Removes and returns t[pos] (the last by default).", "the value"));
  add(lua("table.sort", "table.sort(t [, less])", "Sorts the list in place."));
  add(lua("table.unpack", "table.unpack(t [, i [, j]])", "t[i], ..., t[j].", "values"));
  add(tbl("math", "lua",
          "Lua's math library. math.random is seeded from the journaled run seed, so a replay draws "
          "the same numbers."));
  for (const char* f : {"abs", "ceil", "floor", "fmod", "modf", "max", "min", "sqrt", "exp", "log", "sin",
                        "cos", "tan", "asin", "acos", "atan", "deg", "rad", "tointeger", "type", "ult"})
    add(lua(std::string("math.") + f, std::string("math.") + f + "(...)", std::string("As Lua's math.") + f + ".", "number"));
  add(lua("math.random", "math.random([m [, n]])", "A pseudo-random number (seeded from the run seed).", "number"));
  add(lua("math.randomseed", "math.randomseed([x])", "Reseeds the generator (a replay reseeds it as the original did)."));
  add(val("math.pi", "lua", "number", "π"));
  add(val("math.huge", "lua", "number", "infinity"));
  add(val("math.maxinteger", "lua", "integer", "the largest integer"));
  add(val("math.mininteger", "lua", "integer", "the smallest integer"));
  add(tbl("utf8", "lua", "Lua's utf8 library."));
  add(lua("utf8.char", "utf8.char(...)", "The UTF-8 text of these code points.", "string"));
  add(lua("utf8.codepoint", "utf8.codepoint(s [, i [, j]])", "The code points in s[i..j].", "integers"));
  add(lua("utf8.codes", "utf8.codes(s)", "An iterator over (position, code point).", "an iterator"));
  add(lua("utf8.len", "utf8.len(s [, i [, j]])", "The number of characters, or nil and the first bad position.", "integer"));
  add(lua("utf8.offset", "utf8.offset(s, n [, i])", "The byte position of the n-th character.", "integer"));
  add(val("utf8.charpattern", "lua", "string", "the pattern of one UTF-8 character"));
  add(tbl("coroutine", "lua", "Lua's coroutine library."));
  for (const char* f : {"close", "create", "isyieldable", "resume", "running", "status", "wrap", "yield"})
    add(lua(std::string("coroutine.") + f, std::string("coroutine.") + f + "(...)", std::string("As Lua's coroutine.") + f + "."));

  // ---- what is not there -----------------------------------------------------------------------
  add(absent("os", "absent entirely, not only os.execute: the time is time.now, the environment env.get, "
                   "files are fs.*, sleeping is sleep, programs are exec{}"));
  add(absent("io", "absent entirely: files are fs.read, fs.write, fs.tail, fs.grep ..."));
  add(absent("debug", "absent"));
  add(absent("package", "absent: require finds Lua source in stdlib/ and beside the runbook only"));
  add(absent("dofile", "absent (use require)"));
  add(absent("loadfile", "absent (use require)"));
  add(absent("collectgarbage", "absent"));
  add(absent("string.dump", "absent (as are binary chunks)"));
  return d;
}

}  // namespace

const std::vector<DocEntry>& builtin_docs() {
  static const std::vector<DocEntry> docs = build();
  return docs;
}

std::vector<DocEntry> primitive_table_docs(const Registry& r) {
  std::set<std::string> have;
  for (const auto& e : builtin_docs()) have.insert(e.name);
  std::vector<DocEntry> out;
  std::set<std::string> seen;
  for (const Effect* e : r.all()) {
    auto dot = e->name.find('.');
    if (dot == std::string::npos) continue;
    std::string m = e->name.substr(0, dot);
    if (have.count(m) || !seen.insert(m).second) continue;
    out.push_back(tbl(m, "sandbox", "The " + m + " primitives (reading another field is an error naming them)."));
  }
  return out;
}

namespace {

constexpr size_t kMaxModules = 200;

int l_stub(lua_State*) { return 0; }

// runbook.test_native exists only in a test file's interpreter: the stub lets runbook.test load.
int l_stub_index(lua_State* L) {
  lua_pushcfunction(L, l_stub);
  return 1;
}

std::vector<std::string> exports_of(lua_State* L, int idx) {
  std::vector<std::string> out;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0 && out.size() < 10000) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION) {
      std::string k = lua_tostring(L, -2);
      if (!k.empty() && k[0] != '_') out.push_back(k);
    }
    lua_pop(L, 1);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<StdlibModule> stdlib_modules() {
  std::vector<StdlibModule> mods;
  std::string dir = stdlib_dir() + "/runbook";
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".lua" && it->is_regular_file(ec)) files.push_back(it->path());
    if (files.size() > kMaxModules) break;
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) return mods;
  // A runbook's interpreter as built by Runbook::load (primitives, log/json, the prelude), from a
  // throwaway declaration.
  fs::path tmp;
  try {
    tmp = fs::temp_directory_path() / ("runbook-api-probe-" + std::to_string(::getpid()));
    fs::create_directories(tmp, ec);
    fs::path probe = tmp / "probe.lua";
    os::atomic_write(probe.string(), "runbook{ name = \"api\", version = \"0.0.0\" }\nstep(\"x\", function() end)\n");
    Runbook book(builtin_registry());
    book.load(probe.string());
    Sandbox& sb = book.sandbox();
    std::string err;
    sb.protect(
        [](lua_State* L) {
          lua_newtable(L);
          lua_newtable(L);
          lua_pushcfunction(L, l_stub_index);
          lua_setfield(L, -2, "__index");
          lua_setmetatable(L, -2);
          Sandbox::from(L)->preload("runbook.test_native");
        },
        &err);
    for (const auto& f : files) {
      StdlibModule m;
      m.file = "stdlib/runbook/" + f.filename().string();
      m.module = "runbook." + f.stem().string();
      sb.arm(std::chrono::steady_clock::now() + std::chrono::seconds(10),
             "loading " + m.module + " took longer than 10s");
      std::string merr;
      bool ok = sb.protect(
          [&](lua_State* L) {
            lua_getglobal(L, "require");
            lua_pushstring(L, m.module.c_str());
            lua_call(L, 1, 1);
            if (!lua_istable(L, -1)) return;
            m.exports = exports_of(L, -1);
            lua_pushliteral(L, "__api");
            if (lua_rawget(L, -2) == LUA_TTABLE) {
              m.has_api = true;
              m.api = lua_to_json(L, -1, m.module + ".__api");
            }
          },
          &merr);
      sb.disarm();
      if (!ok) m.error = merr.empty() ? "cannot load" : merr;
      mods.push_back(std::move(m));
    }
  } catch (const std::exception& e) {
    StdlibModule m;
    m.file = dir;
    m.module = "runbook.*";
    m.error = e.what();
    mods.push_back(std::move(m));
  }
  if (!tmp.empty()) fs::remove_all(tmp, ec);
  return mods;
}

namespace {

std::string str(const json& j, const char* k) {
  if (!j.is_object() || !j.contains(k)) return "";
  const json& v = j[k];
  return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
}

}  // namespace

std::vector<DocEntry> stdlib_docs(const std::vector<StdlibModule>& mods) {
  std::vector<DocEntry> out;
  for (const auto& m : mods) {
    if (!m.has_api || !m.api.is_object()) continue;
    DocEntry me;
    me.name = m.module;
    me.kind = "module";
    me.source = "stdlib";
    me.module = m.module;
    me.call = "local " + m.module.substr(m.module.rfind('.') + 1) + " = require \"" + m.module + "\"";
    me.summary = str(m.api, "doc");
    out.push_back(me);
    if (!m.api.contains("functions") || !m.api["functions"].is_array()) continue;
    for (const auto& f : m.api["functions"]) {
      DocEntry e;
      e.name = m.module + "." + str(f, "name");
      e.kind = "function";
      e.source = "stdlib";
      e.module = m.module;
      e.call = str(f, "call");
      e.summary = str(f, "doc");
      e.returns = str(f, "returns");
      if (f.contains("args") && f["args"].is_array())
        for (const auto& a : f["args"])
          e.args.push_back({str(a, "name"), str(a, "type"), a.is_object() && a.contains("required") && a["required"].is_boolean() &&
                                a["required"].get<bool>(),
                            str(a, "default"), str(a, "doc")});
      if (f.contains("results") && f["results"].is_array())
        for (const auto& r : f["results"]) e.results.push_back({str(r, "name"), str(r, "type"), str(r, "doc")});
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace rb::cli
