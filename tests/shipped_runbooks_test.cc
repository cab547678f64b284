// The runbooks this project ships (runbooks/*.lua, runbooks/demo/*.lua) are tested and linted
// like a team's own: each has a `<name>_test.lua` beside it, `runbook test runbooks/` passes
// (the happy path and the safety cases of each procedure, with every effect faked), and
// `runbook lint` finds no error in them or in runbooks/lib/.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "support/support.h"

namespace rb::test {
namespace {

namespace fs = std::filesystem;
const std::string kRunbooks = std::string(RUNBOOK_SOURCE_DIR) + "/runbooks";

bool is_test(const fs::path& p) {
  std::string n = p.filename().string();
  return n.size() > 9 && n.compare(n.size() - 9, 9, "_test.lua") == 0;
}

// A runbook declares itself with `runbook {` (or `runbook{`, `runbook(`) at the start of a line;
// a module (demo/services.lua) does not.
bool declares_runbook(const fs::path& p) {
  static const std::regex decl(R"((^|\n)runbook\s*[\{\(])");
  return std::regex_search(read_file(p.string()), decl);
}

std::vector<fs::path> lua_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".lua") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> shipped_runbooks() {
  std::vector<fs::path> out;
  for (const auto& dir : {kRunbooks, kRunbooks + "/demo"})
    for (const auto& f : lua_files(dir))
      if (!is_test(f) && declares_runbook(f)) out.push_back(f);
  return out;
}

fs::path test_of(const fs::path& rb) {
  return rb.parent_path() / (rb.stem().string() + "_test.lua");
}

TEST(Runbooks, ShippedRunbooksHaveTests) {
  auto rbs = shipped_runbooks();
  ASSERT_GE(rbs.size(), 11u) << "the shipped runbooks were not found in " << kRunbooks;
  for (const auto& rb : rbs) {
    fs::path t = test_of(rb);
    ASSERT_TRUE(fs::exists(t)) << rb << " has no test beside it: write " << t;
    std::string text = read_file(t.string());
    EXPECT_NE(text.find("require \"runbook.test\""), std::string::npos) << t;
    // Real cases: it runs the runbook it sits beside, more than once.
    std::string name = "\"" + rb.filename().string() + "\"";
    size_t runs = 0;
    for (size_t at = 0; (at = text.find(name, at)) != std::string::npos; ++at) ++runs;
    EXPECT_GE(runs, 2u) << t << " does not t.run " << name << " in at least two cases";
    size_t cases = 0;
    for (size_t at = 0; (at = text.find("t.case(", at)) != std::string::npos; ++at) ++cases;
    EXPECT_GE(cases, 2u) << t << ": a happy path and at least one safety case";
  }
  // A test file beside nothing is a leftover.
  for (const auto& dir : {kRunbooks, kRunbooks + "/demo"})
    for (const auto& f : lua_files(dir))
      if (is_test(f)) {
        std::string n = f.filename().string();
        fs::path rb = f.parent_path() / (n.substr(0, n.size() - 9) + ".lua");
        EXPECT_TRUE(fs::exists(rb)) << f << " tests no runbook";
      }
}

TEST(Runbooks, ShippedRunbookTestsPass) {
  TempDir d;
  auto r = run_cli({"test", "--junit", d / "junit.xml", kRunbooks},
                   {{"RUNBOOK_JOURNAL", d / "j.db"}, {"NO_COLOR", "1"}}, 280);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(" passed, 0 failed\n"), std::string::npos) << r.out;
  // Every test file ran (read from the JUnit file: stdout keeps only its head).
  std::string xml = read_file(d / "junit.xml");
  for (const auto& rb : shipped_runbooks())
    EXPECT_NE(xml.find(test_of(rb).string()), std::string::npos) << test_of(rb) << " did not run";
  EXPECT_EQ(xml.find("<failure"), std::string::npos) << xml;
  // Nothing was journaled where a user's runs go.
  EXPECT_FALSE(fs::exists(d / "j.db"));
}

TEST(Runbooks, ShippedRunbooksPassLint) {
  std::vector<std::string> args{"lint"};
  for (const auto& rb : shipped_runbooks()) args.push_back(rb.string());
  for (const auto& f : lua_files(kRunbooks + "/lib")) args.push_back(f.string());
  ASSERT_GE(args.size(), 14u);
  auto r = run_cli(args, {{"NO_COLOR", "1"}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find(": error:"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find(": error:"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("luacheck"), std::string::npos) << "lint could not run luacheck: " << r.err;
}

}  // namespace
}  // namespace rb::test
