// The examples in docs/writing-runbooks.md run as written: each ```lua block that declares a
// runbook passes `runbook check` and a dry-run. And docs/api.md is what `runbook api --markdown`
// prints today, so the reference cannot drift.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

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
    auto dry = run_cli({"exec", file, "--dry-run", "--offline"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
    EXPECT_EQ(dry.code, 0) << "example " << examples << ":\n" << code << dry.out << dry.err;
  }
  EXPECT_GE(examples, 5);
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
