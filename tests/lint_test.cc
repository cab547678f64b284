// `runbook lint` against a corpus (tests/lint/*.lua: each file's first line says the one finding
// it must give, "-- lint: LINE SEVERITY TEXT", or "-- lint: none"), the shipped runbooks (no
// error), and the declared result fields of the registry, which test builds check on every live
// result.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "dispatch/dispatcher.h"
#include "dispatch/registry.h"
#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = RUNBOOK_SOURCE_DIR;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string> lua_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".lua") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

void require_luacheck() {
  ASSERT_FALSE(os::which("luacheck").empty()) << "luacheck is missing: apt-get install -y lua-check";
}

}  // namespace

TEST(Lint, CorpusGivesOneFindingAtTheRightLine) {
  require_luacheck();
  auto files = lua_files(kSrc + "/tests/lint");
  ASSERT_GE(files.size(), 15u);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    std::string head = lines_of(read_file(f)).at(0);
    ASSERT_EQ(head.rfind("-- lint: ", 0), 0u) << "first line must say what lint finds";
    std::string want = head.substr(9);
    auto r = run_cli({"lint", f});
    auto found = lines_of(r.out);
    if (want == "none") {
      EXPECT_EQ(r.code, 0) << r.out << r.err;
      EXPECT_TRUE(found.empty()) << r.out;
      continue;
    }
    std::istringstream w(want);
    std::string line, severity;
    w >> line >> severity;
    std::string text;
    std::getline(w, text);
    text = text.substr(1);
    ASSERT_EQ(found.size(), 1u) << r.out << r.err;
    // file:line:col: severity: message
    EXPECT_EQ(found[0].rfind(f + ":" + line + ":", 0), 0u) << found[0];
    EXPECT_NE(found[0].find(": " + severity + ": " + text), std::string::npos) << found[0];
    EXPECT_EQ(r.code, severity == "error" ? 1 : 0) << r.out << r.err;
  }
}

TEST(Lint, ShippedRunbooksHaveNoError) {
  require_luacheck();
  std::vector<std::string> args = {"lint"};
  for (const auto& d : {"/runbooks", "/runbooks/lib", "/runbooks/demo", "/stdlib"})
    for (const auto& f : lua_files(kSrc + d)) args.push_back(f);
  ASSERT_GT(args.size(), 10u);
  auto r = run_cli(args);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find(": error: "), std::string::npos) << r.out;
}

TEST(Lint, SeveralFilesAndTheExitStatus) {
  require_luacheck();
  auto r = run_cli({"lint", kSrc + "/tests/lint/good.lua", kSrc + "/tests/lint/unknown_primitive.lua",
                    kSrc + "/tests/lint/pkill.lua"});
  EXPECT_EQ(r.code, 1);
  auto found = lines_of(r.out);
  ASSERT_EQ(found.size(), 2u) << r.out;
  EXPECT_NE(found[0].find("unknown_primitive.lua:7:3: error: unknown primitive 'fs.bakup'"), std::string::npos);
  EXPECT_NE(found[1].find("pkill.lua:5:9: warning: "), std::string::npos);
  TempDir d;
  EXPECT_EQ(run_cli({"lint", d / "missing.lua"}).code, 1);
}

TEST(Lint, MissingLuacheckNamesThePackage) {
  TempDir d;
  write_file(d / "rb.lua", "runbook { name = \"x\", version = \"1.0.0\" }\nstep(\"s\", function() end)\n");
  auto r = run_cli({"lint", d / "rb.lua"}, {{"PATH", d.path()}});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("apt-get install lua-check"), std::string::npos) << r.err;
}

TEST(Lint, CheckShowsTheFindingsAsWarnings) {
  require_luacheck();
  auto r = run_cli({"check", kSrc + "/tests/lint/unknown_primitive.lua"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("steps:"), std::string::npos);
  EXPECT_NE(r.err.find("unknown_primitive.lua:7:3: warning: unknown primitive 'fs.bakup': did you mean "
                       "'fs.backup'?"),
            std::string::npos)
      << r.err;
}

TEST(Lint, ApiPrintsTheDeclaredResults) {
  auto r = run_cli({"api"});
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("      .tag : string  — a tag at HEAD, or nil"), std::string::npos);
  auto j = run_cli({"api", "--json"});
  json api = json::parse(j.out);
  EXPECT_EQ(api["type"], "api");
  bool seen = false;
  for (const auto& e : api["entries"])
    if (e["name"] == "git.head") {
      seen = true;
      EXPECT_EQ(e["results"][5]["name"], "tag");
    }
  EXPECT_TRUE(seen);
}

TEST(DeclaredResults, EveryPrimitiveDeclaresWellFormedFields) {
  const std::set<std::string> types = {"string", "number", "integer", "boolean", "table", "list", "map", "any"};
  for (const Effect* e : builtin_registry().all()) {
    SCOPED_TRACE(e->name);
    std::set<std::string> names;
    for (const auto& f : e->results) {
      EXPECT_TRUE(names.insert(f.name).second) << "declared twice: " << f.name;
      EXPECT_TRUE(types.count(f.type)) << f.name << ": " << f.type;
      EXPECT_TRUE(f.name != "*" || f.type == "map");
    }
    // A result documented as a table declares its fields.
    if (!e->returns.empty() && e->returns[0] == '{' && e->returns.rfind("{ {", 0) != 0) {
      EXPECT_FALSE(e->results.empty()) << e->returns;
    }
  }
}

TEST(DeclaredResults, UndeclaredFieldIsNamed) {
  const Effect* head = builtin_registry().find("git.head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(undeclared_result_field(*head, json{{"commit", "x"}, {"tag", nullptr}}), "");
  EXPECT_EQ(undeclared_result_field(*head, json{{"commit", "x"}, {"tagg", 1}}), "tagg");
  EXPECT_EQ(undeclared_result_field(*head, json{{"commit", "x"}, {"planned", true}}), "");
  EXPECT_EQ(undeclared_result_field(*head, json::array({1, 2})), "");
  const Effect* tables = builtin_registry().find("sqlite.tables");
  ASSERT_NE(tables, nullptr);
  EXPECT_EQ(undeclared_result_field(*tables, json{{"users", 3}, {"anything", 1}}), "");
  const Effect* ex = builtin_registry().find("exec");
  EXPECT_EQ(undeclared_result_field(*ex, json{{"code", 1}, {"ok", false}, {"error", "x"}}), "");
}

TEST(DeclaredResults, TestBuildsFailALiveResultWithAnUndeclaredField) {
  ::setenv("RUNBOOK_CHECK_RESULTS", "1", 1);  // on by default in test builds; said here all the same
  Effect e;
  e.name = "t.leaky";
  e.kind = Kind::Probe;
  e.results = {{"a", "integer", "declared"}};
  e.describe = [](const Args&) { return std::string("leak"); };
  e.apply = [](EffectContext&, const Args&) -> json { return json{{"a", 1}, {"b", 2}}; };
  RunOptions o;
  TempDir d;
  o.artifacts_root = d.path();
  Dispatcher disp(nullptr, nullptr, o);
  auto r = disp.call(e, json::object(), "t.lua:1:");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("result field 'b' is not declared"), std::string::npos) << r.error;

  e.results.push_back({"b", "integer", "declared too"});
  auto ok = disp.call(e, json::object(), "t.lua:2:");
  EXPECT_TRUE(ok.ok) << ok.error;
}

// The output docs/writing-runbooks.md shows is what lint prints for its example, misspelt.
TEST(Lint, TheDocumentedExampleGivesTheDocumentedLine) {
  require_luacheck();
  std::string md = read_file(kSrc + "/docs/writing-runbooks.md");
  size_t at = md.find("name = \"lint-me\"");
  ASSERT_NE(at, std::string::npos);
  size_t start = md.rfind("```lua\n", at) + 7;
  std::string code = md.substr(start, md.find("```", at) - start);
  size_t shown = md.find("lint-me.lua:", at);
  ASSERT_NE(shown, std::string::npos);
  std::string want = md.substr(shown, md.find('\n', shown) - shown);
  TempDir d;
  write_file(d / "lint-me.lua", code);
  EXPECT_EQ(run_cli({"lint", d / "lint-me.lua"}).out, "");
  size_t s = code.find("h.short");
  ASSERT_NE(s, std::string::npos);
  write_file(d / "lint-me.lua", code.replace(s, 7, "h.shrot"));
  auto r2 = run_cli({"lint", d / "lint-me.lua"});
  EXPECT_EQ(r2.code, 1);
  EXPECT_EQ(r2.out, d / "lint-me.lua" + std::string(":") + want.substr(std::string("lint-me.lua:").size()) + "\n");
}
