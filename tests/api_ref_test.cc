// The reference (`runbook api`) against what a runbook really gets: every global of a live
// sandbox and every member of its tables is documented, and what is documented exists; every
// exported function of a stdlib module is in its __api and back; the lua-language-server
// annotations compile, define every primitive and name every stdlib function; `runbook init`'s
// scaffold passes lint, test, an offline dry-run and luacheck.
#include <gtest/gtest.h>

#include <lua.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "cli/api_globals.h"
#include "dispatch/registry.h"
#include "os/process.h"
#include "support/support.h"

namespace fs = std::filesystem;
using namespace rb;
using namespace rb::test;

namespace {

json api_entries() {
  auto r = run_cli({"api", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  json doc = json::parse(r.out, nullptr, false);
  EXPECT_EQ(doc.value("type", ""), "api") << r.out.substr(0, 500);
  json j = doc.is_object() && doc.contains("entries") ? doc["entries"] : json();
  EXPECT_TRUE(j.is_array()) << r.out.substr(0, 500);
  return j.is_array() ? j : json::array();
}

std::set<std::string> names_of(const json& entries, bool with_absent) {
  std::set<std::string> out;
  for (const auto& e : entries)
    if (with_absent || e.value("kind", "") != "absent") out.insert(e.value("name", ""));
  return out;
}

// Every global of a runbook's sandbox and every string key of each global table, as seen from
// inside a step (so `run` is there), after a failed step (so run.failed is too).
std::set<std::string> live_globals() {
  TempDir d;
  write_file(d / "globals.lua", R"(runbook { name = "globals", version = "1.0.0" }
step("fails", function() error("on purpose") end)
step{ "look", always = true, run = function()
  local names = {}
  for k, v in next, _G do
    if type(k) == "string" then
      names[#names + 1] = k
      if type(v) == "table" and k ~= "_G" then
        for m in next, v do
          if type(m) == "string" then names[#names + 1] = k .. "." .. m end
        end
      end
    end
  end
  log.info("GLOBALS " .. table.concat(names, " "))
end }
)");
  auto r = run_cli({"exec", d / "globals.lua", "--dry-run", "--offline", "--json"},
                   {{"RUNBOOK_JOURNAL", d / "journal.db"}});
  EXPECT_EQ(r.code, 1) << r.out << r.err;  // the first step fails on purpose
  std::set<std::string> out;
  for (const auto& ev : r.events()) {
    std::string msg = ev.value("message", "");
    if (msg.rfind("GLOBALS ", 0) != 0) continue;
    std::istringstream in(msg.substr(8));
    std::string n;
    while (in >> n) out.insert(n);
  }
  EXPECT_GT(out.size(), 100u) << r.out;
  return out;
}

os::ProcessResult run_in(const std::string& dir, std::vector<std::string> argv,
                         std::map<std::string, std::string> env = {}) {
  os::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = dir;
  spec.env = std::move(env);
  spec.env.emplace("NO_COLOR", "1");
  spec.timeout = std::chrono::seconds(180);
  return os::run_process(spec);
}

}  // namespace

TEST(ApiRef, EveryGlobalAndMemberOfTheSandboxIsDocumented) {
  json entries = api_entries();
  std::set<std::string> documented = names_of(entries, false);
  std::set<std::string> live = live_globals();
  for (const auto& n : live) EXPECT_TRUE(documented.count(n)) << n << " is in the sandbox but not in `runbook api --json`";
  // And the other way: what the reference says exists does.
  for (const auto& e : entries) {
    std::string kind = e.value("kind", ""), source = e.value("source", ""), name = e.value("name", "");
    if (kind == "declaration" || kind == "module" || source == "stdlib") continue;
    if (kind == "absent") {
      EXPECT_FALSE(live.count(name)) << name << " is documented as absent but the sandbox has it";
      continue;
    }
    EXPECT_TRUE(live.count(name)) << name << " is documented but a runbook's sandbox does not have it";
  }
  for (const char* gone : {"os", "io", "debug", "package", "dofile", "loadfile", "string.dump"})
    EXPECT_TRUE(names_of(entries, true).count(gone)) << gone << ": the reference should say it is absent";
}

TEST(ApiRef, EveryEntryIsWellFormed) {
  json entries = api_entries();
  std::set<std::string> seen;
  for (const auto& e : entries) {
    std::string name = e.value("name", "");
    SCOPED_TRACE(name);
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(seen.insert(name).second) << "documented twice";
    EXPECT_FALSE(e.value("summary", "").empty()) << "no summary";
    EXPECT_FALSE(e.contains("error")) << e.dump();
    if (e.value("kind", "") == "function") {
      EXPECT_FALSE(e.value("call", "").empty()) << "no call";
      for (const auto& a : e["args"]) {
        EXPECT_FALSE(a.value("name", "").empty());
        EXPECT_FALSE(a.value("type", "").empty()) << a.dump();
      }
    }
  }
  // The ones the issue names.
  for (const char* n : {"log.info", "log.warn", "log.error", "json.encode", "json.decode", "json.null", "run.id",
                        "run.dry_run", "run.mode", "time.format", "time.now", "wait.until", "wait.poll", "env.get",
                        "try", "confirm", "step", "runbook", "params.NAME", "require", "string.format", "table.concat",
                        "math.floor", "utf8.char", "runbook.test", "runbook.test.run"})
    EXPECT_TRUE(seen.count(n)) << n;
}

TEST(ApiRef, TextAndMarkdownShowTheGlobals) {
  auto text = run_cli({"api"});
  ASSERT_EQ(text.code, 0) << text.err;
  auto md = run_cli({"api", "--markdown"});
  ASSERT_EQ(md.code, 0) << md.err;
  for (const std::string& s :
       {std::string("wait[\"until\"](fn, { timeout = \"60s\""), std::string("time.format(t [, fmt])"),
        std::string("json.encode(value [, pretty])"), std::string("log.info(...)"), std::string("run.dry_run"),
        std::string("absent entirely, not only os.execute"), std::string("retry_delay"),
        std::string("t.run(\"rollback.lua\""), std::string("fs.backup(path, dir)")}) {
    EXPECT_NE(text.out.find(s), std::string::npos) << "text: " << s;
    EXPECT_NE(md.out.find(s), std::string::npos) << "markdown: " << s;
  }
  EXPECT_NE(md.out.find("## Standard library modules"), std::string::npos);
  EXPECT_NE(md.out.find("### `runbook.test`"), std::string::npos);
  EXPECT_EQ(run_cli({"api", "--json", "--luals"}).code, 2);
}

TEST(ApiRef, StdlibModulesDocumentEveryExportAndNothingElse) {
  auto mods = cli::stdlib_modules();
  bool test_seen = false;
  for (const auto& m : mods) {
    SCOPED_TRACE(m.file);
    EXPECT_TRUE(m.error.empty()) << m.error;
    if (!m.has_api) continue;
    test_seen = test_seen || m.module == "runbook.test";
    EXPECT_EQ(m.api.value("module", ""), m.module) << "__api.module must be the name to require";
    EXPECT_FALSE(m.api.value("doc", "").empty());
    ASSERT_TRUE(m.api.contains("functions") && m.api["functions"].is_array());
    std::set<std::string> documented;
    for (const auto& f : m.api["functions"]) {
      std::string n = f.value("name", "");
      EXPECT_TRUE(documented.insert(n).second) << n << " documented twice";
      EXPECT_FALSE(f.value("doc", "").empty()) << n;
      EXPECT_FALSE(f.value("call", "").empty()) << n;
      EXPECT_TRUE(f.contains("returns") && f["returns"].is_string()) << n << ": returns";
      // A list, or {} (an empty Lua table).
      auto list = [](const json& j) { return j.is_array() || (j.is_object() && j.empty()); };
      ASSERT_TRUE(f.contains("args") && list(f["args"])) << n << ": args";
      ASSERT_TRUE(f.contains("results") && list(f["results"])) << n << ": results";
      for (const auto& a : f["args"]) {
        EXPECT_FALSE(a.value("name", "").empty() || a.value("type", "").empty()) << n << ": " << a.dump();
        EXPECT_TRUE(a.contains("required") && a["required"].is_boolean()) << n << ": " << a.dump();
        EXPECT_TRUE(a.contains("doc") && a["doc"].is_string()) << n << ": " << a.dump();
      }
      for (const auto& r : f["results"])
        EXPECT_FALSE(r.value("name", "").empty() || r.value("type", "").empty() || !r.contains("doc")) << n << ": " << r.dump();
    }
    std::set<std::string> exported(m.exports.begin(), m.exports.end());
    for (const auto& n : exported) EXPECT_TRUE(documented.count(n)) << m.module << "." << n << " is exported but not in its __api";
    for (const auto& n : documented) EXPECT_TRUE(exported.count(n)) << m.module << "." << n << " is in its __api but not exported";
  }
  EXPECT_TRUE(test_seen) << "runbook.test has no __api";
  // And `runbook api` shows them.
  std::set<std::string> names = names_of(api_entries(), false);
  for (const auto& m : mods) {
    if (!m.has_api) continue;
    for (const auto& f : m.api["functions"]) EXPECT_TRUE(names.count(m.module + "." + f.value("name", ""))) << f.dump();
  }
}

TEST(ApiRef, LualsAnnotationsCompileAndDefineEveryPrimitive) {
  auto r = run_cli({"api", "--luals"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("---@meta\n", 0), 0u);
  lua_State* L = luaL_newstate();
  ASSERT_NE(L, nullptr);
  luaL_openlibs(L);
  int rc = luaL_loadbufferx(L, r.out.data(), r.out.size(), "=runbook.d.lua", "t");
  ASSERT_EQ(rc, LUA_OK) << lua_tostring(L, -1);
  // Running it defines each global as an (empty) function: it must run, in order, too.
  ASSERT_EQ(lua_pcall(L, 0, 0, 0), LUA_OK) << lua_tostring(L, -1);
  for (const Effect* e : builtin_registry().all()) {
    SCOPED_TRACE(e->name);
    auto dot = e->name.find('.');
    if (dot == std::string::npos) {
      lua_getglobal(L, e->name.c_str());
    } else {
      lua_getglobal(L, e->name.substr(0, dot).c_str());
      ASSERT_TRUE(lua_istable(L, -1));
      lua_getfield(L, -1, e->name.substr(dot + 1).c_str());
      lua_remove(L, -2);
    }
    EXPECT_TRUE(lua_isfunction(L, -1));
    lua_pop(L, 1);
    EXPECT_NE(r.out.find("---@class runbook.args." + e->name + "\n"), std::string::npos);
    if (!e->results.empty()) {
      EXPECT_NE(r.out.find("---@class runbook.result." + e->name + " : runbook.result\n"), std::string::npos);
    }
  }
  for (const char* g : {"run", "log", "json", "time", "wait", "env"}) {
    lua_getglobal(L, g);
    EXPECT_TRUE(lua_istable(L, -1)) << g;
    lua_pop(L, 1);
  }
  for (const char* f : {"runbook", "step", "try"}) {
    lua_getglobal(L, f);
    EXPECT_TRUE(lua_isfunction(L, -1)) << f;
    lua_pop(L, 1);
  }
  lua_close(L);
  for (const std::string& s : {std::string("---@class runbook.global.run\n"), std::string("---@field dry_run boolean"),
                               std::string("wait[\"until\"] = function(fn, opts) end"),
                               std::string("---@class runbook.declaration\n"), std::string("---@class runbook.param\n"),
                               std::string("---@field timeout? runbook.duration"),
                               std::string("---@overload fun(path: string, dir?: string")})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  for (const auto& m : cli::stdlib_modules())
    if (m.has_api) {
      std::string var = "__" + m.module;
      for (auto& c : var)
        if (c == '.') c = '_';
      EXPECT_NE(r.out.find("---@class " + m.module + "\nlocal " + var + " = {}"), std::string::npos) << m.module;
      for (const auto& f : m.api["functions"])
        EXPECT_NE(r.out.find(var + "." + f.value("name", "") + " = function("), std::string::npos) << f.dump();
    }
}

TEST(ApiRef, InitScaffoldPassesLintTestDryRunAndLuacheck) {
  TempDir d;
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "journal.db"}};
  auto init = run_in(d.path(), {RUNBOOK_BIN, "init", "restart-web"}, env);
  ASSERT_EQ(init.code, 0) << init.stdout_text << init.stderr_text;
  for (const char* f : {"restart-web.lua", "restart-web_test.lua", ".luarc.json", ".luacheckrc", ".runbook/runbook.d.lua"})
    EXPECT_TRUE(fs::is_regular_file(d / f)) << f;
  EXPECT_NE(read_file(d / "restart-web.lua").find("name = \"restart-web\""), std::string::npos);

  auto lint = run_in(d.path(), {RUNBOOK_BIN, "lint", "restart-web.lua", "restart-web_test.lua"}, env);
  EXPECT_EQ(lint.code, 0) << lint.stdout_text << lint.stderr_text;
  EXPECT_EQ(lint.stdout_text, "") << "the scaffold should lint clean";

  auto test = run_in(d.path(), {RUNBOOK_BIN, "test", "restart-web_test.lua"}, env);
  EXPECT_EQ(test.code, 0) << test.stdout_text << test.stderr_text;
  EXPECT_NE(test.stdout_text.find("4 passed, 0 failed"), std::string::npos) << test.stdout_text;

  auto dry = run_in(d.path(), {RUNBOOK_BIN, "exec", "restart-web.lua", "--dry-run", "--offline"}, env);
  EXPECT_EQ(dry.code, 0) << dry.stdout_text << dry.stderr_text;
  auto check = run_in(d.path(), {RUNBOOK_BIN, "check", "restart-web.lua"}, env);
  EXPECT_EQ(check.code, 0) << check.stdout_text << check.stderr_text;

  std::string luacheck = os::which("luacheck");
  ASSERT_FALSE(luacheck.empty()) << "luacheck is missing: apt-get install lua-check";
  auto lc = run_in(d.path(), {luacheck, "--no-cache", "--formatter", "plain", "--config", ".luacheckrc", "restart-web.lua", "restart-web_test.lua"});
  EXPECT_EQ(lc.code, 0) << lc.stdout_text << lc.stderr_text;
  // The config's std is the sandbox's: a global it does not have is a finding.
  write_file(d / "bad.lua", "os.execute(\"true\")\nio.write(\"x\")\n");
  auto bad = run_in(d.path(), {luacheck, "--no-cache", "--formatter", "plain", "--config", ".luacheckrc", "bad.lua"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.stdout_text.find("undefined variable 'os'"), std::string::npos) << bad.stdout_text;

  json rc = json::parse(read_file(d / ".luarc.json"), nullptr, false);
  ASSERT_TRUE(rc.is_object());
  EXPECT_EQ(rc["workspace.library"][0], ".runbook");
  EXPECT_EQ(rc["runtime.builtin"]["os"], "disable");
  EXPECT_EQ(rc["runtime.builtin"]["io"], "disable");
  EXPECT_EQ(read_file(d / ".runbook/runbook.d.lua"), run_cli({"api", "--luals"}).out);
  EXPECT_EQ(read_file(d / ".luacheckrc"), run_cli({"api", "--luacheckrc"}).out);
}

TEST(ApiRef, InitRefusesToOverwriteAndRejectsBadNames) {
  TempDir d;
  ASSERT_EQ(run_in(d.path(), {RUNBOOK_BIN, "init", "demo"}).code, 0);
  write_file(d / "demo.lua", "-- mine\n");
  auto again = run_in(d.path(), {RUNBOOK_BIN, "init", "demo"});
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.stderr_text.find("demo.lua exists"), std::string::npos) << again.stderr_text;
  EXPECT_EQ(read_file(d / "demo.lua"), "-- mine\n");

  // Another name in the same directory: the editor files exist, so nothing is written.
  auto other = run_in(d.path(), {RUNBOOK_BIN, "init", "other"});
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.stderr_text.find(".runbook/runbook.d.lua exists"), std::string::npos) << other.stderr_text;
  EXPECT_FALSE(fs::exists(d / "other.lua"));

  TempDir e;
  for (std::string bad : std::vector<std::string>{"", "1abc", "a/b", "../x", "a b", "x_test", ".hidden", std::string(65, 'a'), "a.b", "é"}) {
    auto r = run_in(e.path(), {RUNBOOK_BIN, "init", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_NE(r.stderr_text.find("bad name"), std::string::npos) << bad << ": " << r.stderr_text;
  }
  EXPECT_TRUE(fs::is_empty(e.path()));
}

namespace {

// The field names documented for a declaration entry (runbook, step, params.NAME).
std::set<std::string> documented_fields(const json& entries, const std::string& name) {
  std::set<std::string> out;
  for (const auto& e : entries)
    if (e.value("name", "") == name)
      for (const auto& a : e["args"]) out.insert(a.value("name", ""));
  return out;
}

// The lists of accepted fields in engine/lua/runbook.cc, in the order they appear: runbook{},
// a parameter, step{}.
std::vector<std::set<std::string>> accepted_fields() {
  std::string src = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/engine/lua/runbook.cc");
  std::vector<std::set<std::string>> out;
  std::regex list(R"(known = \{([^}]*)\})");
  std::regex word("\"([a-z_]+)\"");
  for (std::sregex_iterator it(src.begin(), src.end(), list), end; it != end; ++it) {
    std::string body = (*it)[1];
    std::set<std::string> names;
    for (std::sregex_iterator w(body.begin(), body.end(), word); w != std::sregex_iterator(); ++w)
      names.insert((*w)[1]);
    out.push_back(names);
  }
  return out;
}

}  // namespace

// runbook{}, parameter and step{} fields: the reference lists exactly those the engine accepts,
// and a declaration using every documented one loads.
TEST(ApiRef, DeclarationFieldsAreTheOnesTheEngineAccepts) {
  json entries = api_entries();
  auto accepted = accepted_fields();
  ASSERT_EQ(accepted.size(), 3u) << "engine/lua/runbook.cc's lists of known fields moved: update this test";
  EXPECT_EQ(documented_fields(entries, "runbook"), accepted[0]);
  EXPECT_EQ(documented_fields(entries, "params.NAME"), accepted[1]);
  EXPECT_EQ(documented_fields(entries, "step"), accepted[2]);

  TempDir d;
  write_file(d / "all.lua", R"(runbook {
  name = "all-fields", version = "1.0.0", summary = "s", description = "d", owner = "o", tags = { "t" },
  lock = "all:{x}",
  params = { x = { type = "string", required = false, default = "v", secret = false, doc = "d",
                   choices = { "v", "w" }, target = true } },
}
step{ "one", name = "one", timeout = "10s", retries = 1, retry_delay = "1s", always = true,
      run = function(p) log.info(p.x) end }
)");
  auto r = run_cli({"check", d / "all.lua"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}
