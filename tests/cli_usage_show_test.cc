// The command line's first word (an unknown command, a bare `runbook`) and what `runbook show`
// prints: each log line under the step that wrote it, and a crashed run's own artifacts
// directory. Run through the real binary.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/support.h"

namespace rb::test {
namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CliUsage, UnknownCommandIsNamedWithTheCommands) {
  auto r = run_cli({"rollback", "x"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "runbook: unknown command 'rollback'")) << r.err;
  EXPECT_FALSE(has(r.err, "A subcommand is required")) << r.err;
  EXPECT_FALSE(has(r.err, "did you mean")) << "nothing is close to 'rollback':\n" << r.err;
  // The list of commands, so the user sees what there is.
  for (const char* c : {"exec", "check", "lint", "show", "replay", "resume", "report", "test"})
    EXPECT_TRUE(has(r.err, std::string(c))) << c << " missing from:\n" << r.err;
  EXPECT_FALSE(has(r.err, "__complete")) << "the hidden command the completion scripts ask is listed:\n" << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliUsage, ACloseMisspellingGetsTheNearestCommand) {
  auto r = run_cli({"exce", "rb.lua"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "runbook: unknown command 'exce': did you mean 'exec'?")) << r.err;
  auto s = run_cli({"shwo", "last"});
  EXPECT_EQ(s.code, 2);
  EXPECT_TRUE(has(s.err, "did you mean 'show'?")) << s.err;
  auto l = run_cli({"lnit"});
  EXPECT_TRUE(has(l.err, "did you mean 'lint'?")) << l.err;
  auto h = run_cli({"help"});
  EXPECT_EQ(h.code, 2);
  EXPECT_TRUE(has(h.err, "runbook: unknown command 'help': did you mean '--help'?")) << h.err;
  // A hostile word costs nothing and is cut in the message.
  auto big = run_cli({std::string(100000, 'z')});
  EXPECT_EQ(big.code, 2);
  EXPECT_LT(big.err.size(), 2000u);
  // Real commands and options still parse as before.
  EXPECT_EQ(run_cli({"--version"}).code, 0);
  EXPECT_EQ(run_cli({"api"}).code, 0);
  EXPECT_EQ(run_cli({"--bogus"}).code, 2);
}

TEST(CliUsage, BareRunbookPrintsTheUsageAndExits2) {
  auto r = run_cli({});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "Usage")) << r.err;
  EXPECT_TRUE(has(r.err, "exec")) << r.err;
  EXPECT_TRUE(has(r.err, "Exit status")) << r.err;
  EXPECT_FALSE(has(r.err, "A subcommand is required")) << r.err;
}

// Each step's log lines are printed under that step, also the ones after its last effect
// (they used to appear under the next step's header).
TEST(Show, LogLinesStayUnderTheStepThatWroteThem) {
  TempDir d;
  write_file(d / "rb.lua", R"(runbook { name = "logs", version = "1.0.0" }
step("one", function()
  log.info("before the write of one")
  fs.write{ path = ")" + d / "out.txt" + R"(", content = "x" }
  log.info("last line of one")
end)
step("two", function()
  log.info("first line of two")
  fs.exists(")" + d / "out.txt" + R"(")
  log.warn("last line of two")
end)
step("three", function() log.info("only line of three") end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}, {"NO_COLOR", "1"}};
  ASSERT_EQ(run_cli({"exec", d / "rb.lua"}, env).code, 0);
  auto s = run_cli({"show", "last"}, env);
  ASSERT_EQ(s.code, 0) << s.err;
  const std::string& o = s.out;
  size_t h1 = o.find("step 1  one"), h2 = o.find("step 2  two"), h3 = o.find("step 3  three");
  ASSERT_NE(h1, std::string::npos) << o;
  ASSERT_NE(h2, std::string::npos) << o;
  ASSERT_NE(h3, std::string::npos) << o;
  auto between = [&](const std::string& line, size_t from, size_t to) {
    size_t at = o.find(line);
    return at != std::string::npos && at > from && at < to;
  };
  size_t write = o.find("#1 fs.write");
  ASSERT_NE(write, std::string::npos) << o;
  EXPECT_TRUE(between("· before the write of one", h1, write)) << o;
  EXPECT_TRUE(between("· last line of one", write, h2)) << o;
  size_t exists = o.find("#2 fs.exists");
  ASSERT_NE(exists, std::string::npos) << o;
  EXPECT_TRUE(between("· first line of two", h2, exists)) << o;
  EXPECT_TRUE(between("! last line of two", exists, h3)) << o;
  EXPECT_TRUE(between("· only line of three", h3, o.size())) << o;
}

// A run killed mid-way (its end never recorded) shows its own artifacts directory, where its
// backups are, not the directory of every run's artifacts.
TEST(Show, CrashedRunShowsItsOwnArtifactsDirectory) {
  TempDir d;
  write_file(d / "app.env", "TOKEN=abc\n");
  write_file(d / "rb.lua", R"(runbook { name = "crashy", version = "1.0.0" }
step("back up, then change", function()
  fs.backup{ path = ")" + d / "app.env" + R"(", private = true }
  fs.write{ path = ")" + d / "app.env" + R"(", content = "TOKEN=new\n" }
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "state/j.db"}, {"NO_COLOR", "1"}};
  std::filesystem::create_directories(d / "state");
  // A finished run first, so the crashed one is #2 and a wrong directory would not exist.
  ASSERT_EQ(run_cli({"exec", d / "rb.lua"}, env).code, 0);
  auto crash_env = env;
  crash_env["RUNBOOK_CRASH_AT"] = "done:1";
  auto crashed = run_cli({"exec", d / "rb.lua"}, crash_env);
  ASSERT_NE(crashed.code, 0);
  std::string want = d / "state/artifacts/2";
  auto s = run_cli({"show", "2"}, env);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(has(s.out, "crashed")) << s.out;
  EXPECT_TRUE(has(s.out, "  artifacts " + want + "\n")) << s.out;
  EXPECT_TRUE(std::filesystem::is_directory(want)) << "the backup is not in " << want;
  auto j = run_cli({"show", "2", "--json"}, env);
  ASSERT_EQ(j.code, 0);
  EXPECT_EQ(json::parse(j.out).value("artifacts", ""), want) << j.out;
  auto first = run_cli({"show", "1"}, env);
  EXPECT_TRUE(has(first.out, "  artifacts " + d / "state/artifacts/1" + "\n")) << first.out;
}

}  // namespace
}  // namespace rb::test
