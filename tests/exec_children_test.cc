// No child outlives its exec: whatever shape the escape takes ((cmd &), setsid, a double fork,
// TERM ignored, a pipe held open), nothing with the marker argv is left in /proc when exec
// returns, and it returns within its timeout + grace. detached = true keeps a daemon.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
using Clock = std::chrono::steady_clock;

namespace {

// A sleep whose argv no other process has: "sleep 9999.<pid><n>".
std::string marker() {
  static int n = 0;
  return "9999." + std::to_string(::getpid()) + std::to_string(++n);
}

// Processes whose command line contains `needle` (zombies included: they still count here).
std::vector<pid_t> with_argv(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(needle) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// This process's children, zombies included: a reparented process nobody reaped shows up here.
std::vector<pid_t> my_children() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    char state = 0;
    int ppid = 0;
    if (close != std::string::npos &&
        std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == ::getpid())
      out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// "sleep\0<m>": how /proc/PID/cmdline spells `sleep <m>`.
std::string sleep_argv(const std::string& m) { return std::string("sleep\0", 6) + m; }

struct Timed {
  LuaRun run;
  double secs;
};

// One step running `body`, with the marker in the Lua local M.
Timed run_step(const std::string& body, const std::string& m) {
  TempDir dir;
  std::string code =
      "runbook { name = 'ec', version = '1.0.0' }\nstep('s', function()\nlocal M = '" + m + "'\n" +
      body + "\nend)\n";
  auto t0 = Clock::now();
  LuaRun r = run_lua(dir.path(), code);
  return {std::move(r), std::chrono::duration<double>(Clock::now() - t0).count()};
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

void expect_gone(const std::string& m, const std::string& what = "") {
  EXPECT_EQ(with_argv(sleep_argv(m)), std::vector<pid_t>{}) << what << ": left behind: sleep " << m;
  EXPECT_EQ(my_children(), std::vector<pid_t>{}) << what;
  int sub = -1;
  ::prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
  EXPECT_EQ(sub, 0) << "the subreaper flag outlived the exec";
}

void kill_all(const std::string& m) {
  for (pid_t p : with_argv(sleep_argv(m))) ::kill(p, SIGKILL);
}

}  // namespace

// Each shape of escape, after a program that exits at once: exec returns promptly (not after the
// sleep), with the program's own output, and nothing is left.
TEST(ExecChildren, EveryEscapeShapeIsStoppedWhenTheProgramExits) {
  struct Shape {
    std::string name, script;
  };
  std::vector<Shape> shapes = {
      {"background subshell", "(sleep $M &); echo out"},
      {"setsid", "setsid sleep $M & echo out"},
      {"double fork", "sh -c 'sh -c \"sleep $M &\" &'; echo out"},
      {"holds stdout", "sleep $M & echo out"},
      {"own session and group, holds stderr", "setsid sh -c 'sleep $M' >&2 & echo out"},
  };
  for (const auto& s : shapes) {
    std::string m = marker();
    auto t = run_step("local r = exec{ 'sh', '-c', [[" + s.script +
                          "]], env = { M = M }, grace = '2s' }\n" +
                          "assert(r.stdout == 'out\\n', r.stdout)",
                      m);
    EXPECT_EQ(t.run.result.exit_code, 0) << s.name << ": " << err_of(t.run);
    EXPECT_LT(t.secs, 2.0) << s.name;
    expect_gone(m, s.name);
    kill_all(m);
  }
}

// One that ignores TERM is KILLed after the grace, and exec does not wait longer than that.
TEST(ExecChildren, AnEscapedProcessIgnoringTermIsKilledAfterTheGrace) {
  std::string m = marker();
  auto t = run_step(
      "exec{ 'sh', '-c', [[setsid sh -c 'trap \"\" TERM; sleep $M; true' & sleep 0.2]], "
      "env = { M = M }, grace = '1s' }",
      m);
  EXPECT_EQ(t.run.result.exit_code, 0) << err_of(t.run);
  EXPECT_GE(t.secs, 1.0);
  EXPECT_LT(t.secs, 2.2);
  expect_gone(m);
  kill_all(m);
}

// A timeout stops the program and what escaped it at once: within timeout + grace.
TEST(ExecChildren, ATimeoutStopsTheProgramAndWhatEscapedIt) {
  std::string m = marker();
  auto t = run_step(
      "exec{ 'sh', '-c', [[setsid sleep $M & (trap '' TERM; sleep $M) & sleep $M]], "
      "env = { M = M }, timeout = '1s', grace = '1s' }",
      m);
  EXPECT_EQ(t.run.result.exit_code, 1);
  EXPECT_NE(err_of(t.run).find("timed out after 1.0s"), std::string::npos) << err_of(t.run);
  EXPECT_LT(t.secs, 2.6);
  expect_gone(m);
  kill_all(m);
}

// The runner leaves a note saying what it stopped, so an operator knows the program left things.
TEST(ExecChildren, WhatWasStoppedIsNoted) {
  std::string m = marker();
  auto t =
      run_step("exec{ 'sh', '-c', [[setsid sleep $M & setsid sleep $M &]], env = { M = M } }", m);
  EXPECT_EQ(t.run.result.exit_code, 0) << err_of(t.run);
  bool noted = false;
  for (const auto& [level, msg] : t.run.events.logs)
    noted = noted || msg.find("stopped 2 processes that 'sh' left running") != std::string::npos;
  EXPECT_TRUE(noted);
  expect_gone(m);
  kill_all(m);
}

TEST(ExecChildren, DetachedKeepsTheDaemon) {
  std::string m = marker();
  auto t =
      run_step("exec{ 'sh', '-c', [[setsid sleep $M &]], env = { M = M }, detached = true }", m);
  EXPECT_EQ(t.run.result.exit_code, 0) << err_of(t.run);
  EXPECT_LT(t.secs, 2.0);
  EXPECT_EQ(with_argv(sleep_argv(m)).size(), 1u) << "detached = true must keep it";
  kill_all(m);
}

// pkg (pip, npm), service managers and pg_dump spawn through the same os::run_process: the same
// guarantee holds there without asking.
TEST(ExecChildren, RunProcessItselfGivesTheGuarantee) {
  std::string m = marker();
  os::ProcessSpec spec;
  spec.argv = {"sh", "-c", "setsid sleep $M & (sleep $M &); echo ok"};
  spec.env = {{"M", m}};
  auto t0 = Clock::now();
  auto r = os::run_process(spec);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.stdout_text, "ok\n");
  EXPECT_EQ(r.leftovers, 2);
  expect_gone(m);
  kill_all(m);
}
