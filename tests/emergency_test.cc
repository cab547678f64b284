// The main job, as a user meets it: runbooks/demo/setup.sh stands up the demo environment (a bad
// release deployed, its health check failing), then `runbook exec runbooks/emergency.lua`
// rehearsed with --dry-run (nothing changes) and run live (the app is healthy again, at the last
// good release, with backups made and the run in the journal).
#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>

#include "os/http_client.h"
#include "os/process.h"
#include "support/support.h"

namespace rb::test {
namespace {

namespace fs = std::filesystem;

long health(int port) {
  os::HttpRequest rq;
  rq.url = "http://127.0.0.1:" + std::to_string(port) + "/health";
  rq.timeout = std::chrono::seconds(5);
  return os::http_perform(rq).status;
}

int entries(const std::string& dir) {
  return static_cast<int>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

std::string git_out(const std::string& repo, const std::vector<std::string>& args) {
  os::ProcessSpec s;
  s.argv = {"git", "-C", repo};
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  s.timeout = std::chrono::seconds(30);
  auto r = os::run_process(s);
  EXPECT_EQ(r.code, 0) << r.stderr_text;
  std::string out = r.stdout_text;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// A demo environment in a temp dir on a free port; its app is stopped at the end.
class Demo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_ / "demo";
    port_ = free_port();
    os::ProcessSpec s;
    s.argv = {std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/demo/setup.sh", dir_, std::to_string(port_)};
    s.env = {{"RUNBOOK_BIN", RUNBOOK_BIN}};
    s.timeout = std::chrono::seconds(120);
    s.detached = true;  // setup.sh starts the demo app, which must outlive it
    auto r = os::run_process(s);
    ASSERT_EQ(r.code, 0) << r.stdout_text << r.stderr_text;
    up_ = true;
  }
  void TearDown() override {
    if (!up_) return;
    run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/demo/app.lua", "--param", "action=stop", "--param",
             "app=" + dir_ + "/app", "--param", "health=" + url(), "--journal", tmp_ / "stop.db"});
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/health"; }
  // exec runbooks/emergency.lua pointed at this demo.
  CliResult emergency(std::vector<std::string> extra, const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> args = {
        "exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/emergency.lua",
        "--journal", journal(),
        "--param", "app=" + dir_ + "/app",
        "--param", "health=" + url(),
        "--param", "config=" + dir_ + "/config",
        "--param", "db=" + dir_ + "/data/app.db",
        "--param", "backups=" + dir_ + "/backups"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, env);
  }
  std::string journal() const { return tmp_ / "journal.db"; }
  // Everything the rollback may touch, except the app's own log and pid files.
  std::string world() const {
    return sha256_tree(dir_ + "/app") + sha256_tree(dir_ + "/config") + sha256_tree(dir_ + "/data") +
           sha256_tree(dir_ + "/backups");
  }

  TempDir tmp_;
  std::string dir_;
  int port_ = 0;
  bool up_ = false;
};

TEST_F(Demo, SetupDeploysTheBadReleaseAndItsHealthCheckFails) {
  EXPECT_EQ(health(port_), 503);
  EXPECT_EQ(git_out(dir_ + "/app", {"describe", "--tags", "--exact-match", "HEAD"}), "v1.1.0");
}

TEST_F(Demo, DryRunShowsThePlanAndChangesNothing) {
  std::string before = world();
  std::string head = git_out(dir_ + "/app", {"rev-parse", "HEAD"});
  auto r = emergency({"--dry-run"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(world(), before) << "a dry-run changed the demo";
  EXPECT_EQ(git_out(dir_ + "/app", {"rev-parse", "HEAD"}), head);
  EXPECT_EQ(health(port_), 503) << "the dry-run restarted or changed the app";
  // The plan names every step and what each change would do.
  for (const char* want : {"Tag an emergency backup", "Stop the app", "Back up config and data",
                           "Move the code to the last good release", "v1.0.0", "demo-app"})
    EXPECT_NE(r.out.find(want), std::string::npos) << "plan lacks '" << want << "':\n" << r.out;
  EXPECT_EQ(git_out(dir_ + "/app", {"tag", "--list", "emergency-backup-*"}), "");
}

TEST_F(Demo, LiveRunRollsBackToTheLastGoodReleaseAndTheAppIsHealthy) {
  std::string good = git_out(dir_ + "/app", {"rev-parse", "v1.0.0^{commit}"});
  std::string bad = git_out(dir_ + "/app", {"rev-parse", "HEAD"});
  auto r = emergency({});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(health(port_), 200);
  EXPECT_EQ(git_out(dir_ + "/app", {"rev-parse", "HEAD"}), good);
  // The bad release is kept under the emergency tag; config and database were backed up.
  std::string tag = git_out(dir_ + "/app", {"tag", "--list", "emergency-backup-*"});
  ASSERT_FALSE(tag.empty());
  EXPECT_EQ(git_out(dir_ + "/app", {"rev-parse", tag + "^{commit}"}), bad);
  int backups = entries(dir_ + "/backups");
  EXPECT_EQ(backups, 2) << "expected a config backup and a database backup";
  // The journal holds the run, succeeded.
  auto runs = run_cli({"runs", "--json", "--journal", journal()});
  ASSERT_EQ(runs.code, 0) << runs.err;
  EXPECT_NE(runs.out.find("emergency-rollback"), std::string::npos) << runs.out;
  EXPECT_NE(runs.out.find("succeeded"), std::string::npos) << runs.out;
  // Run again: already at the good release and healthy; it still succeeds.
  auto again = emergency({});
  EXPECT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_EQ(health(port_), 200);
}

// The process dies (SIGKILL, through the test hook) just after the app was stopped and the code
// moved, before it was started again: the worst moment of a 3 a.m. rollback. `runbook resume`
// finishes it without repeating what was done: the emergency tag is not made twice, the backups
// are not taken twice, and the app ends healthy at the good release.
TEST_F(Demo, ACrashMidRollbackIsFinishedByResume) {
  std::string good = git_out(dir_ + "/app", {"rev-parse", "v1.0.0^{commit}"});
  // Effect 13 is service.start (1 define, 2 time.now, 3-5 probes, 6 http.get, 7 rev_parse,
  // 8 tag, 9 stop, 10-11 backups, 12 checkout); die as it begins.
  auto crashed = emergency({}, {{"RUNBOOK_CRASH_AT", "before:13"}});
  ASSERT_EQ(crashed.code, 128 + 9) << crashed.out << crashed.err;
  EXPECT_NE(health(port_), 200) << "the app should be down: it was stopped and not started";
  auto r = run_cli({"resume", "last", "--journal", journal()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(health(port_), 200);
  EXPECT_EQ(git_out(dir_ + "/app", {"rev-parse", "HEAD"}), good);
  std::string tags = git_out(dir_ + "/app", {"tag", "--list", "emergency-backup-*"});
  EXPECT_EQ(tags.find('\n'), std::string::npos) << "the emergency tag was made twice:\n" << tags;
  int backups = entries(dir_ + "/backups");
  EXPECT_EQ(backups, 2) << "the backups were taken twice";
}

}  // namespace
}  // namespace rb::test
