// Ctrl-C still cleans up, tried with real signals to a real `runbook exec`: the first SIGINT (or
// SIGTERM) stops the long step, the remaining `always = true` steps run (each under its own
// timeout) and are journaled, the run stays interrupted (130); a second SIGINT stops the running
// cleanup step and skips the rest. A step past its deadline is followed by the cleanup too.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/support.h"

namespace rb::test {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

class RunbookProcess {
 public:
  RunbookProcess(const TempDir& d, const std::string& file) : out_(d / "out.txt") {
    std::string journal = d / "j.db";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::setenv("RUNBOOK_JOURNAL", journal.c_str(), 1);
      ::setenv("NO_COLOR", "1", 1);
      int fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", file.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~RunbookProcess() {
    if (code_ < 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }
  std::string out() const { return read_file(out_); }
  // Waits until the output shows `text`.
  bool wait_for(const std::string& text, std::chrono::milliseconds limit = 20s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (has(out(), text)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  // The exit status (128 + signal), or -1 if it did not end within `limit`.
  int wait(std::chrono::milliseconds limit = 30s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (code_ < 0 && std::chrono::steady_clock::now() < until) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    return code_;
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
  int code_ = -1;
};

json last_run(const TempDir& d) {
  auto show = run_cli({"show", "last", "--json"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  return json::parse(show.out, nullptr, false);
}

std::string step_outcome(const json& run, int idx) {
  std::string o = "(no row)";
  for (const auto& s : run["steps"])
    if (s.value("idx", 0) == idx) o = s.value("outcome", "");
  return o;
}

// A runbook: a long first step, an ordinary step, then two cleanup steps writing files.
std::string cleanup_runbook(const TempDir& d, const std::string& long_step,
                            const std::string& first_cleanup = "") {
  return R"(runbook{ name = "cleanup", version = "1.0.0" }
step("started", function() fs.write{ path = ")" + (d / "started") + R"(", content = "1" } end)
step("long", function() )" + long_step + R"( end)
step("ordinary", function() fs.write{ path = ")" + (d / "ordinary") + R"(", content = "1" } end)
step{ name = "leave maintenance", always = true, timeout = "2s", run = function()
  )" + first_cleanup + R"(
  fs.write{ path = ")" + (d / "maintenance-off") + R"(", content = "1" }
end }
step{ name = "write the log entry", always = true, run = function()
  fs.write{ path = ")" + (d / "logged") + R"(", content = "1" }
end }
)";
}

void first_interrupt_runs_the_cleanup(int sig, const std::string& long_step) {
  TempDir d;
  write_file(d / "rb.lua", cleanup_runbook(d, long_step));
  RunbookProcess r(d, d / "rb.lua");
  auto until = std::chrono::steady_clock::now() + 20s;
  while (!exists(d / "started") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(exists(d / "started")) << r.out();
  std::this_thread::sleep_for(300ms);  // inside the long step
  auto t0 = std::chrono::steady_clock::now();
  r.signal(sig);
  EXPECT_EQ(r.wait(), 130) << r.out();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  std::string out = r.out();
  EXPECT_TRUE(has(out, "interrupted: running 2 cleanup steps (always = true); Ctrl-C again to skip them"))
      << out;
  EXPECT_TRUE(exists(d / "maintenance-off")) << out;
  EXPECT_TRUE(exists(d / "logged")) << out;
  EXPECT_FALSE(exists(d / "ordinary")) << "a step not marked always is skipped";

  json run = last_run(d);
  ASSERT_TRUE(run.is_object());
  EXPECT_EQ(run["outcome"], "interrupted") << "cleanup succeeded, the run stays interrupted";
  EXPECT_EQ(run["exit_code"], 130);
  EXPECT_EQ(run["extra"]["kind"], "interrupted");
  EXPECT_EQ(step_outcome(run, 2), "interrupted");
  EXPECT_EQ(step_outcome(run, 3), "(no row)");
  EXPECT_EQ(step_outcome(run, 4), "succeeded");
  EXPECT_EQ(step_outcome(run, 5), "succeeded");
  EXPECT_EQ(run["extra"]["cleanup"],
            json::parse(R"([{"step":4,"name":"leave maintenance","outcome":"succeeded"},
                            {"step":5,"name":"write the log entry","outcome":"succeeded"}])"));
}

TEST(Cleanup, FirstCtrlCDuringASleepRunsTheAlwaysSteps) {
  first_interrupt_runs_the_cleanup(SIGINT, R"(sleep("30s"))");
}

TEST(Cleanup, FirstCtrlCDuringAnExecRunsTheAlwaysSteps) {
  first_interrupt_runs_the_cleanup(SIGINT, R"(exec{ "sleep", "30" })");
}

TEST(Cleanup, SigtermBehavesLikeTheFirstCtrlC) {
  first_interrupt_runs_the_cleanup(SIGTERM, R"(sleep("30s"))");
}

TEST(Cleanup, FirstCtrlCDuringALuaLoopRunsTheAlwaysSteps) {
  first_interrupt_runs_the_cleanup(SIGINT, R"(local n = 0 while true do n = n + 1 end)");
}

TEST(Cleanup, SecondCtrlCStopsTheRunningCleanupStepAndSkipsTheRest) {
  TempDir d;
  // The first cleanup step takes long (its own timeout is 2s: the second Ctrl-C comes first).
  write_file(d / "rb.lua", cleanup_runbook(d, R"(sleep("30s"))", R"(exec{ "sleep", "30" })"));
  RunbookProcess r(d, d / "rb.lua");
  auto until = std::chrono::steady_clock::now() + 20s;
  while (!exists(d / "started") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);
  r.signal(SIGINT);
  ASSERT_TRUE(r.wait_for("step 4/5")) << r.out();
  std::this_thread::sleep_for(300ms);  // inside the long cleanup step
  auto t0 = std::chrono::steady_clock::now();
  r.signal(SIGINT);
  EXPECT_EQ(r.wait(), 130) << r.out();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms) << "stopped, not run to its timeout";
  EXPECT_FALSE(exists(d / "maintenance-off")) << r.out();
  EXPECT_FALSE(exists(d / "logged")) << "the later cleanup step is skipped";
  EXPECT_TRUE(has(r.out(), "interrupted again: skipping the remaining 1 cleanup step")) << r.out();
  json run = last_run(d);
  EXPECT_EQ(run["outcome"], "interrupted");
  EXPECT_EQ(step_outcome(run, 4), "interrupted");
  EXPECT_EQ(step_outcome(run, 5), "(no row)");
  EXPECT_EQ(run["extra"]["cleanup"],
            json::parse(R"([{"step":4,"name":"leave maintenance","outcome":"interrupted"},
                            {"step":5,"name":"write the log entry","outcome":"skipped"}])"));
}

TEST(Cleanup, ACleanupStepAfterCtrlCHasItsOwnDeadline) {
  TempDir d;
  // The first cleanup step overruns its own 2s timeout: it fails, and the next one still runs.
  write_file(d / "rb.lua", cleanup_runbook(d, R"(sleep("30s"))", R"(sleep("30s"))"));
  RunbookProcess r(d, d / "rb.lua");
  auto until = std::chrono::steady_clock::now() + 20s;
  while (!exists(d / "started") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  r.signal(SIGINT);
  EXPECT_EQ(r.wait(), 130) << r.out();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 1500ms) << r.out();
  EXPECT_LT(took, 8s) << r.out();
  EXPECT_TRUE(has(r.out(), "exceeded its timeout of 2.0s")) << r.out();
  EXPECT_FALSE(exists(d / "maintenance-off"));
  EXPECT_TRUE(exists(d / "logged")) << r.out();
  json run = last_run(d);
  EXPECT_EQ(run["outcome"], "interrupted");
  EXPECT_TRUE(has(run.value("error", ""), "interrupted at step 2")) << run["error"];
  EXPECT_EQ(step_outcome(run, 4), "failed");
  EXPECT_EQ(step_outcome(run, 5), "succeeded");
}

TEST(Cleanup, AStepPastItsDeadlineIsFollowedByTheCleanup) {
  TempDir d;
  write_file(d / "rb.lua", R"(runbook{ name = "deadline", version = "1.0.0" }
step{ name = "slow", timeout = "1s", run = function() sleep("30s") end }
step("ordinary", function() fs.write{ path = ")" + (d / "ordinary") + R"(", content = "1" } end)
step{ name = "cleanup", always = true, run = function()
  fs.write{ path = ")" + (d / "cleaned") + R"(", content = "1" }
end }
)");
  auto r = run_cli({"exec", d / "rb.lua", "--json"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(exists(d / "cleaned"));
  EXPECT_FALSE(exists(d / "ordinary"));
  json run = last_run(d);
  EXPECT_EQ(run["outcome"], "failed");
  EXPECT_EQ(run["extra"]["cleanup"],
            json::parse(R"([{"step":3,"name":"cleanup","outcome":"succeeded"}])"));
  json end;
  for (const auto& e : r.events())
    if (e.value("type", "") == "run_end") end = e;
  EXPECT_EQ(end["exit_code"], 1);
  EXPECT_EQ(end["kind"], "failed");
  EXPECT_EQ(end["cleanup"], run["extra"]["cleanup"]);
}

TEST(Cleanup, InterruptedJsonRunEndCarries130) {
  TempDir d;
  write_file(d / "rb.lua", R"(runbook{ name = "j", version = "1.0.0" }
step("mark", function() fs.write{ path = ")" + (d / "started") + R"(", content = "1" } end)
step("long", function() sleep("30s") end)
)");
  std::string out = d / "out.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (d / "j.db").c_str(), 1);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", (d / "rb.lua").c_str(), "--json", nullptr);
    ::_exit(127);
  }
  auto until = std::chrono::steady_clock::now() + 20s;
  while (!exists(d / "started") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 130);
  std::string text = read_file(out);
  EXPECT_TRUE(has(text, R"("exit_code":130)")) << text;
  EXPECT_TRUE(has(text, R"("kind":"interrupted")")) << text;
}

}  // namespace
}  // namespace rb::test
