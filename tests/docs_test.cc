// The examples in docs/writing-runbooks.md run as written: each ```lua block that declares a
// runbook passes `runbook check` and a dry-run. And docs/api.md is what `runbook api --markdown`
// prints today, so the reference cannot drift.
#include <gtest/gtest.h>

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
