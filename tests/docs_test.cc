// The examples in docs/writing-runbooks.md run as written: each ```lua block that declares a
// runbook passes `runbook check` and a dry-run. And docs/api.md is what `runbook api --markdown`
// prints today, so the reference cannot drift.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "support/support.h"

using namespace rb::test;

TEST(Docs, WritingRunbooksExamplesRun) {
  std::string md = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/writing-runbooks.md");
  ASSERT_FALSE(md.empty());
  TempDir d;
  int examples = 0;
  size_t pos = 0;
  while ((pos = md.find("```lua\n", pos)) != std::string::npos) {
    size_t start = pos + 7;
    size_t end = md.find("```", start);
    std::string code = md.substr(start, end - start);
    pos = end + 3;
    if (code.rfind("runbook {", 0) != 0) continue;
    ++examples;
    std::string file = d / ("example" + std::to_string(examples) + ".lua");
    write_file(file, code);
    auto check = run_cli({"check", file});
    EXPECT_EQ(check.code, 0) << "example " << examples << ":\n" << code << check.err;
    auto lint = run_cli({"lint", file});  // examples teach: no lint error in them
    EXPECT_EQ(lint.code, 0) << "example " << examples << ":\n" << code << lint.out << lint.err;
    auto dry = run_cli({"exec", file, "--dry-run", "--offline"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
    EXPECT_EQ(dry.code, 0) << "example " << examples << ":\n" << code << dry.out << dry.err;
  }
  EXPECT_GE(examples, 5);
}

// "Testing a runbook": the runbook and its test file run with `runbook test` as written.
TEST(Docs, TestingExampleRuns) {
  std::string md = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/writing-runbooks.md");
  size_t at = md.find("name = \"restart-queue\"");
  ASSERT_NE(at, std::string::npos);
  size_t start = md.rfind("```lua\n", at) + 7;
  std::string rb = md.substr(start, md.find("```", start) - start);
  size_t tstart = md.find("```lua\n", start) + 7;
  std::string test = md.substr(tstart, md.find("```", tstart) - tstart);
  ASSERT_NE(test.find("require \"runbook.test\""), std::string::npos);
  TempDir d;
  write_file(d / "restart.lua", rb);
  write_file(d / "restart_test.lua", test);
  auto r = run_cli({"test", d / "restart_test.lua"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 passed, 0 failed"), std::string::npos) << r.out;
}

// "Pinning packages back": the example's own error path works. pip check finding problems, and
// failing to run at all (then `problems` is nil and `error` says why: the example used to call
// `table.concat(nil)` there), each end in a warning naming the cause.
TEST(Docs, PinBackExampleSurvivesItsErrorPath) {
  std::string md = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/writing-runbooks.md");
  size_t at = md.find("name = \"pin-back\"");
  ASSERT_NE(at, std::string::npos);
  size_t start = md.rfind("```lua\n", at) + 7;
  std::string rb = md.substr(start, md.find("```", start) - start);
  TempDir d;
  write_file(d / "pin.lua", rb);
  write_file(d / "pin_test.lua", R"(local t = require "runbook.test"
local function warned(r, text)
  for _, l in ipairs(r.logs) do if l.level == "warn" and l.message == text then return true end end
  return false
end
t.case("pip check could not run", function()
  local r = t.run("pin.lua", { fakes = { ["pip.check"] = t.fail("no python in /srv/app/venv") } })
  t.eq(r.outcome, "succeeded", r.error)
  t.ok(warned(r, "pip check: pip.check: no python in /srv/app/venv") or
       warned(r, "pip check: no python in /srv/app/venv"), t.repr(r.logs))
end)
t.case("pip check found problems", function()
  local r = t.run("pin.lua", { fakes = { ["pip.check"] = { ok = false, problems = { "a 1 requires b", "c 2 requires d" } } } })
  t.eq(r.outcome, "succeeded", r.error)
  t.ok(warned(r, "pip check: a 1 requires b; c 2 requires d"), t.repr(r.logs))
end)
t.case("all is well", function()
  local r = t.run("pin.lua", { fakes = { ["pip.check"] = { ok = true } } })
  t.eq(r.outcome, "succeeded")
  t.called(r, "pip.pin", { packages = { jsonschema = "4.23.0", ["pydantic-core"] = "2.33.2" } })
  t.eq(#r.logs, 0)
end)
)");
  auto r = run_cli({"test", d / "pin_test.lua"}, {{"RUNBOOK_JOURNAL", d / "j.db"}, {"NO_COLOR", "1"}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 passed, 0 failed"), std::string::npos) << r.out;
}

// "What a runbook cannot do": `os` is absent entirely (not only os.execute), and so is `io`.
TEST(Docs, NoOsAndNoIoInARunbook) {
  std::string md = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/writing-runbooks.md");
  EXPECT_NE(md.find("No `io`, no `os` at all"), std::string::npos);
  TempDir d;
  for (std::string call : {"os.time()", "os.getenv('HOME')", "os.execute('true')", "io.open('/etc/hostname')"}) {
    write_file(d / "rb.lua", "runbook { name = 'x', version = '1.0.0' }\nstep('s', function() return " + call + " end)\n");
    auto r = run_cli({"exec", d / "rb.lua"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
    EXPECT_EQ(r.code, 2) << call << r.out << r.err;
    std::string global = call.substr(0, 2) == "io" ? "io" : "os";
    EXPECT_NE((r.out + r.err).find("undefined global '" + global + "'"), std::string::npos) << call << r.out << r.err;
  }
}

TEST(Docs, ApiReferenceIsCurrent) {
  auto r = run_cli({"api", "--markdown"});
  ASSERT_EQ(r.code, 0);
  std::string doc = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/api.md");
  EXPECT_EQ(doc, r.out) << "docs/api.md is stale: run `build/runbook api --markdown > docs/api.md`";
}

// The prediction example of "Dry-run: what your runbook sees" rehearses green against the real
// file system (not offline): its verification reads the content the planned write predicts,
// and nothing is written. The same file live writes and verifies for real.
TEST(Docs, PredictionExampleRehearsesItsVerification) {
  std::string md = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/docs/writing-runbooks.md");
  size_t at = md.find("name = \"config-known-good\"");
  ASSERT_NE(at, std::string::npos);
  size_t start = md.rfind("```lua\n", at) + 7;
  std::string code = md.substr(start, md.find("```", start) - start);
  TempDir d;
  write_file(d / "config.lua", code);
  std::string dir = d / "conf";
  auto dry = run_cli({"exec", d / "config.lua", "--dry-run", "-p", "dir=" + dir},
                     {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_NE(dry.out.find("≈"), std::string::npos) << "the read was not predicted:\n" << dry.out;
  EXPECT_FALSE(std::filesystem::exists(dir)) << "a dry-run created " << dir;
  auto live = run_cli({"exec", d / "config.lua", "-p", "dir=" + dir}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(live.code, 0) << live.out << live.err;
  EXPECT_EQ(read_file(dir + "/app.conf"), "workers = 4\n");
}

// The coverage tables of docs/runbooks.md (between `<!-- coverage:begin -->` and
// `<!-- coverage:end -->`) name only runbooks that exist in runbooks/ and tests that exist as
// TEST(Suite, Name) in tests/*.cc, so the table cannot claim a carrier or a test that is gone.
TEST(Docs, CoverageTableNamesRealRunbooksAndTests) {
  const std::string src = RUNBOOK_SOURCE_DIR;
  std::string md = read_file(src + "/docs/runbooks.md");
  std::string tests;
  for (const auto& e : std::filesystem::directory_iterator(src + "/tests"))
    if (e.path().extension() == ".cc") tests += read_file(e.path().string());
  const std::regex lua_re(R"(([A-Za-z0-9_/.-]+)\.lua)");
  const std::regex test_re(R"(\b([A-Z][A-Za-z0-9_]*)\.([A-Z][A-Za-z0-9_]*)\b)");
  int tables = 0, rows = 0, named_tests = 0;
  size_t pos = 0;
  while ((pos = md.find("<!-- coverage:begin -->", pos)) != std::string::npos) {
    size_t end = md.find("<!-- coverage:end -->", pos);
    ASSERT_NE(end, std::string::npos) << "a coverage table is not closed";
    ++tables;
    std::string block = md.substr(pos, end - pos);
    pos = end;
    size_t lb = 0;
    while (lb < block.size()) {
      size_t le = block.find('\n', lb);
      if (le == std::string::npos) le = block.size();
      std::string line = block.substr(lb, le - lb);
      lb = le + 1;
      if (line.rfind("| ", 0) != 0 || line.rfind("|---", 0) == 0 || line.rfind("| §", 0) == 0) continue;
      std::vector<std::string> cells;
      size_t c = 1;
      while (c < line.size()) {
        size_t n = line.find(" | ", c);
        if (n == std::string::npos) n = line.rfind('|');
        if (n == std::string::npos || n < c) break;
        cells.push_back(line.substr(c, n - c));
        c = n + 2;
      }
      ASSERT_GE(cells.size(), 5u) << "a coverage row needs 5 cells: " << line;
      ++rows;
      for (std::sregex_iterator it(cells[2].begin(), cells[2].end(), lua_re), e; it != e; ++it) {
        std::string f = src + "/runbooks/" + (*it)[1].str() + ".lua";
        EXPECT_TRUE(std::filesystem::exists(f)) << "no runbook " << f << " in: " << line;
      }
      for (std::sregex_iterator it(cells[3].begin(), cells[3].end(), test_re), e; it != e; ++it) {
        ++named_tests;
        std::string name = (*it)[1].str() + ", " + (*it)[2].str() + ")";
        bool found = tests.find("TEST(" + name) != std::string::npos || tests.find("TEST_P(" + name) != std::string::npos ||
                     tests.find("TEST_F(" + name) != std::string::npos;
        EXPECT_TRUE(found) << "no TEST(" << (*it)[1] << ", " << (*it)[2]
                                                   << ") in tests/*.cc, named in: " << line;
      }
    }
  }
  EXPECT_EQ(tables, 5) << "one coverage table per seed";
  EXPECT_GE(rows, 353);  // the exhaustive item list has 358 rows
  EXPECT_GT(named_tests, 0);
}
