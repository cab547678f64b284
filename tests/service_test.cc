// service.* and proc.* against real things: processes the process backend starts (a real Python
// HTTP server with a health URL, one that ignores TERM, one that exits at once), Debian's
// supervisord on a private socket, pm2 with a private PM2_HOME. systemd and Docker cannot run
// here: those tests put a fake systemctl/docker first in PATH that logs its argv, check the exact
// commands, and say so in their names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/strings.h"
#include "dispatch/dispatcher.h"
#include "dispatch/registry.h"
#include "os/process.h"
#include "os/procfs.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

const std::string kSupport = RUNBOOK_TEST_SUPPORT_DIR;

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

// The result of the n-th call (0-based) of effect `name` in a run.
json result_of(const LuaRun& r, const std::string& name, size_t n = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && n-- == 0) return e.result;
  return nullptr;
}
const EffectEvent* event_of(const LuaRun& r, const std::string& name, size_t n = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && n-- == 0) return &e;
  return nullptr;
}

bool alive(pid_t pid) { return os::is_alive(pid); }

// Waits until each process runs the program (its exec done: python3 reading app.py), rather than
// sleeping a guess that a loaded machine overruns.
void wait_exec(const std::vector<pid_t>& pids, const std::string& needle = "app.py") {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (pid_t pid : pids) {
    while (std::chrono::steady_clock::now() < until) {
      auto p = os::read_process(pid);
      if (p && p->cmdline.find("python") != std::string::npos && p->cmdline.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

bool wait_gone(pid_t pid, int ms = 5000) {
  for (int i = 0; i < ms / 20; ++i) {
    if (!alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !alive(pid);
}

bool port_open(int port) { return wait_for_port(port, 50); }

// The pid a pidfile holds ("1234\n", the whole file), or 0.
pid_t pid_in(const std::string& pidfile) {
  std::string t = read_file(pidfile);
  std::smatch m;
  return std::regex_match(t, m, std::regex("([1-9][0-9]*)\n")) ? std::stoi(m[1]) : 0;
}
// Runbook's record beside the pidfile.
json record_of(const std::string& pidfile) { return json::parse(read_file(pidfile + ".runbook"), nullptr, false); }

// Every test has its own shared state directory (default pidfiles and logs), and anything a
// failed test leaves running from its temp dir is killed at the end.
class Svc : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = dir_ / "state";
    ::setenv("RUNBOOK_STATE_DIR", state_.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("RUNBOOK_STATE_DIR");
    for (const auto& p : os::list_processes())
      if (p.pid != ::getpid() && (p.cmdline.find(dir_.path()) != std::string::npos ||
                                  p.cwd.rfind(dir_.path(), 0) == 0))
        ::kill(p.pid, SIGKILL);
  }

  // One step running `body`, with params dir, support, port (as strings).
  LuaRun run(const std::string& body, Mode mode = Mode::Live) {
    std::string code =
        "runbook { name = 'svc', version = '1.0.0', params = { dir = { type = 'path' }, "
        "support = { type = 'path' }, port = { type = 'string' } } }\n"
        "step('s', function(p)\n" + body + "\nend)\n";
    std::string rd = dir_ / ("run" + std::to_string(++runs_));
    stdfs::create_directories(rd);
    return run_lua(rd, code, mode, {{"dir", dir_.path()}, {"support", kSupport}, {"port", std::to_string(port_)}});
  }

  TempDir dir_;
  std::string state_;
  int port_ = free_port();
  int runs_ = 0;
};

const char* kWebDef = R"lua(
  service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", p.port, p.dir .. "/srv" },
                  cwd = p.dir, env = { SVC_MARK = "from-define" }, log = "web.log",
                  health = "http://127.0.0.1:" .. p.port .. "/health" }
)lua";

}  // namespace

TEST_F(Svc, ProcessBackend_StartsDetachedWaitsUntilHealthyAndStopsItsGroup) {
  stdfs::create_directories(dir_ / "srv");
  auto r = run(std::string(kWebDef) + R"lua(
    local s = service.start("web")
    assert(s.state == "running" and s.changed == true and s.healthy == true, json.encode(s))
    local st = service.status("web")
    assert(st.state == "running" and st.pid == s.pid and st.since, json.encode(st))
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  pid_t pid = result_of(r, "service.start")["pid"].get<pid_t>();
  ASSERT_TRUE(alive(pid));
  // It outlives its starter properly: own session and group, not our child, stdin /dev/null,
  // output in its log, in its cwd with the env it was given.
  auto p = os::read_process(pid);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sid, pid);
  EXPECT_EQ(p->pgid, pid);
  EXPECT_NE(p->ppid, ::getpid());
  EXPECT_EQ(p->cwd, dir_.path());
  EXPECT_EQ(stdfs::read_symlink("/proc/" + std::to_string(pid) + "/fd/0").string(), "/dev/null");
  EXPECT_EQ(stdfs::read_symlink("/proc/" + std::to_string(pid) + "/fd/1").string(), dir_ / "web.log");
  EXPECT_NE(read_file("/proc/" + std::to_string(pid) + "/environ").find("SVC_MARK=from-define"), std::string::npos);
  int st = 0;
  EXPECT_EQ(::waitpid(-1, &st, WNOHANG), -1) << "the runbook kept a child (a zombie in waiting)";
  EXPECT_EQ(errno, ECHILD);
  // The pidfile holds the pid alone, as other tools read it; runbook's record beside it
  // identifies the process exactly, in the shared state dir.
  EXPECT_EQ(read_file(state_ + "/web.pid"), std::to_string(pid) + "\n");
  json pf = record_of(state_ + "/web.pid");
  EXPECT_EQ(pf["pid"], pid);
  EXPECT_EQ(pf["started"].get<uint64_t>(), p->start_ticks);
  EXPECT_EQ(pf["cmdline"], p->cmdline);
  EXPECT_TRUE(port_open(port_));

  auto s = run(std::string(kWebDef) + R"lua(
    local r = service.stop("web")
    assert(r.state == "stopped" and r.changed == true and r.signal == "TERM", json.encode(r))
    assert(service.status("web").state == "stopped")
  )lua");
  ASSERT_EQ(s.result.exit_code, 0) << err_of(s);
  EXPECT_EQ(result_of(s, "service.stop")["pid"], pid);
  EXPECT_TRUE(wait_gone(pid, 1000));
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid"));
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid.runbook"));
  EXPECT_FALSE(port_open(port_));
}

TEST_F(Svc, ProcessBackend_StartOfRunningAndStopOfStoppedSucceedWithoutActingAndSaySo) {
  auto r = run(R"lua(
    service.define{ name = "idle", argv = { "sh", "-c", "while :; do sleep 1; done", p.dir }, settle = "200ms" }
    local a = service.start("idle")
    local b = service.start{ name = "idle" }
    assert(a.changed == true and b.changed == false and b.pid == a.pid and b.state == "running", json.encode(b))
    assert(b.message:find("already running %(pid " .. a.pid .. "%)"), b.message)
    local c = service.stop("idle")
    local d = service.stop("idle")
    assert(c.changed == true and c.pid == a.pid, json.encode(c))
    assert(d.changed == false and d.state == "stopped" and d.pid == nil, json.encode(d))
    assert(d.message:find("not running; nothing to stop"), d.message)
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(r.events.logged("idle: already running (pid "));
  EXPECT_TRUE(r.events.logged("idle: not running; nothing to stop"));
  pid_t pid = result_of(r, "service.start")["pid"].get<pid_t>();
  EXPECT_TRUE(wait_gone(pid, 1000));
}

TEST_F(Svc, ProcessBackend_ProcessThatIgnoresTermGetsKillAfterStopTimeout) {
  // `trap '' TERM` is inherited by the sleep children too: the whole group ignores TERM.
  auto r = run(R"lua(
    service.define{ name = "stubborn", argv = { "sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.2; done", p.dir },
                    stop_timeout = "1s" }
    service.start("stubborn")
    local t0 = time.now()
    local s = service.stop("stubborn")
    assert(s.signal == "KILL" and s.changed == true, json.encode(s))
    assert(time.now() - t0 >= 0.95, "KILL came before the grace ran out")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(r.events.logged("did not exit within"));
  pid_t pid = result_of(r, "service.start")["pid"].get<pid_t>();
  EXPECT_FALSE(alive(pid));
  EXPECT_TRUE(os::group_members(pid).empty()) << "a sleep of the group survived";
}

TEST_F(Svc, ProcessBackend_ProcessThatExitsAtOnceFailsWithTheTailOfItsLog) {
  auto r = run(R"lua(
    service.define{ name = "broken", argv = { "sh", "-c", "echo booting; echo 'fatal: /etc/app.ini not found' >&2; exit 3" } }
    service.start("broken")
  )lua");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(r).find("service.start: broken exited"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("booting | fatal: /etc/app.ini not found"), std::string::npos) << err_of(r);
  EXPECT_FALSE(stdfs::exists(state_ + "/broken.pid"));
  EXPECT_NE(read_file(state_ + "/broken.log").find("fatal: /etc/app.ini"), std::string::npos);

  // With a health URL: it dies while being waited for, and the wait stops at once.
  auto t0 = std::chrono::steady_clock::now();
  auto h = run(R"lua(
    service.define{ name = "broken2", argv = { "python3", "-c", "import sys; print('boom: port in use', flush=True); sys.exit(1)" },
                    health = "http://127.0.0.1:" .. p.port .. "/health", start_timeout = "20s" }
    service.start("broken2")
  )lua");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_NE(err_of(h).find("broken2 exited before it became healthy"), std::string::npos) << err_of(h);
  EXPECT_NE(err_of(h).find("boom: port in use"), std::string::npos) << err_of(h);
}

TEST_F(Svc, ProcessBackend_StalePidfile_PidReusedByAnotherProcess_IsNeverSignalled) {
  Child other({"sleep", "300"});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto info = os::read_process(other.pid());
  ASSERT_TRUE(info);
  // Case 1: the pid now belongs to a process with another start time (an old-style pidfile, the
  // JSON record itself, as runbook wrote them before the record moved beside it).
  stdfs::create_directories(state_);
  write_file(state_ + "/app.pid", json{{"pid", other.pid()}, {"started", 1}, {"cmdline", "python3 app.py"}}.dump());
  const std::string def = R"lua(
    service.define{ name = "app", argv = { "sh", "-c", "while :; do sleep 1; done", p.dir }, settle = "200ms" }
  )lua";
  auto r = run(def + R"lua(
    local st = service.status("app")
    assert(st.state == "stopped" and st.stale == true and st.pid == nil, json.encode(st))
    local s = service.stop("app")
    assert(s.changed == false and s.state == "stopped", json.encode(s))
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(r.events.logged("is stale: pid " + std::to_string(other.pid())));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(alive(other.pid()));

  // Case 2: same start time, another command line: still not ours.
  write_file(state_ + "/app.pid", std::to_string(other.pid()) + "\n");
  write_file(state_ + "/app.pid.runbook",
             json{{"pid", other.pid()}, {"started", info->start_ticks}, {"cmdline", "python3 app.py"}}.dump());
  auto r2 = run(def + R"lua(
    assert(service.stop("app").changed == false)
    local s = service.start("app")
    assert(s.changed == true and s.pid ~= nil, json.encode(s))
    service.stop("app")
  )lua");
  ASSERT_EQ(r2.result.exit_code, 0) << err_of(r2);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(alive(other.pid()));
  EXPECT_NE(result_of(r2, "service.start")["pid"].get<pid_t>(), other.pid());
}

// A pidfile another tool wrote, or rewrote, names a pid runbook cannot vouch for: it is refused,
// named, and never signalled (however large or strange it is), and it is left as it was.
TEST_F(Svc, ProcessBackend_APidfileAnotherToolWroteOrRewrote_IsNeverActedOn) {
  Child other({"sleep", "300"});
  ASSERT_TRUE(alive(other.pid()));
  const std::string pf = state_ + "/app.pid";
  const std::string def = R"lua(
    service.define{ name = "app", argv = { "sh", "-c", "while :; do sleep 1; done", p.dir }, settle = "200ms" }
  )lua";
  const std::string probe = def + R"lua(
    local st = service.status("app")
    assert(st.state == "stopped" and st.stale == true and st.pid == nil, json.encode(st))
    local s = service.stop("app")
    assert(s.changed == false and s.state == "stopped", json.encode(s))
  )lua";
  stdfs::create_directories(state_);
  struct Case {
    std::string label, content, says;
  };
  const std::string other_pid = std::to_string(other.pid());
  const std::vector<Case> cases = {
      {"a bare pid", other_pid + "\n",
       "pidfile " + pf + " is not one runbook wrote (no record " + pf + ".runbook"},
      {"a bare pid, no newline", other_pid, "(no record " + pf + ".runbook"},
      {"8 MiB of junk", std::string(8 << 20, '7'), "is not one runbook wrote (over 4096 bytes)"},
      {"8 MiB of JSON-looking junk", "{" + std::string(8 << 20, ' '), "is not one runbook wrote (over 1024 KiB)"},
      {"garbage", "\x01\x02pid: " + other_pid + "\xff\n", "is not one runbook wrote (it holds no pid: \"??pid: "},
      {"a pid and more", other_pid + " " + other_pid + "\n", "(it holds no pid"},
      {"a negative pid", "-" + other_pid + "\n", "(it holds no pid"},
      {"an out-of-range pid", "99999999999999999999\n", "(it holds no pid"},
      {"empty", "", "is not one runbook wrote (it is empty)"},
      {"JSON without a start time", json{{"pid", other.pid()}}.dump(), "(no start time and command line)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    stdfs::remove(pf + ".runbook");
    write_file(pf, c.content);
    auto t0 = std::chrono::steady_clock::now();
    auto r = run(probe);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
    EXPECT_TRUE(r.events.logged(c.says)) << result_of(r, "service.status").dump();
    EXPECT_NE(result_of(r, "service.status").value("detail", "").find(c.says), std::string::npos)
        << result_of(r, "service.status").dump();
    EXPECT_TRUE(alive(other.pid()));
    EXPECT_EQ(read_file(pf), c.content) << "the pidfile was changed";
  }
  // A FIFO where the pidfile should be: refused at once (a read would wait for a writer).
  stdfs::remove(pf);
  ASSERT_EQ(::mkfifo(pf.c_str(), 0644), 0);
  auto fifo = run(probe);
  ASSERT_EQ(fifo.result.exit_code, 0) << err_of(fifo);
  EXPECT_TRUE(fifo.events.logged(pf + " is not a regular file"));
  stdfs::remove(pf);

  // Rewritten: runbook started the service, another tool then put another pid in its pidfile.
  auto s = run(def + "service.start('app')");
  ASSERT_EQ(s.result.exit_code, 0) << err_of(s);
  pid_t ours = pid_in(pf);
  ASSERT_GT(ours, 0);
  write_file(pf, other_pid + "\n");
  auto r = run(probe);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(r.events.logged("pidfile " + pf + " names pid " + other_pid + " but runbook's record " + pf +
                              ".runbook names pid " + std::to_string(ours) + ": rewritten by another tool?"));
  EXPECT_TRUE(alive(other.pid()));
  EXPECT_TRUE(alive(ours)) << "neither pid is acted on";
  EXPECT_EQ(read_file(pf), other_pid + "\n");
  // Put back, runbook stops its own process.
  write_file(pf, std::to_string(ours) + "\n");
  auto x = run(def + "assert(service.stop('app').changed == true)");
  ASSERT_EQ(x.result.exit_code, 0) << err_of(x);
  EXPECT_TRUE(wait_gone(ours, 3000));
  EXPECT_TRUE(alive(other.pid()));
  EXPECT_FALSE(stdfs::exists(pf));
  EXPECT_FALSE(stdfs::exists(pf + ".runbook"));
}

// The pidfile is what every other tool reads: `kill $(cat pidfile)` stops the service, and
// runbook then sees it has exited and starts it again.
TEST_F(Svc, ProcessBackend_KillCatPidfileStopsWhatRunbookStarted) {
  stdfs::create_directories(dir_ / "srv");
  auto r = run(std::string(kWebDef) + "service.start('web')");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  pid_t pid = result_of(r, "service.start")["pid"].get<pid_t>();
  const std::string pf = state_ + "/web.pid";
  EXPECT_EQ(pid_in(pf), pid);
  // systemd's PIDFile= and monit read the first line as a decimal pid; so does this.
  ASSERT_EQ(std::system(("kill $(cat '" + pf + "')").c_str()), 0);
  EXPECT_TRUE(wait_gone(pid, 3000));
  EXPECT_FALSE(port_open(port_));
  auto again = run(std::string(kWebDef) + R"lua(
    local st = service.status("web")
    assert(st.state == "stopped" and st.detail:find("has exited"), json.encode(st))
    local s = service.start("web")
    assert(s.changed == true and s.state == "running", json.encode(s))
    service.stop("web")
  )lua");
  ASSERT_EQ(again.result.exit_code, 0) << err_of(again);
}

TEST_F(Svc, ProcessBackend_ASecondRunbookStopsWhatTheFirstStarted_FromAServicesModule) {
  // The services are declared once, in a module beside the runbooks; each runbook requires it
  // and defines them (service.define for each entry). Two separate `runbook exec` processes.
  stdfs::create_directories(dir_ / "srv");
  std::string books = dir_ / "books";
  write_file(books + "/services.lua",
             "-- Declared once; every runbook beside this file requires it.\n"
             "local M = {}\n"
             "M.list = {\n"
             "  web = { argv = { 'python3', '" + kSupport + "/http_server.py', '" + std::to_string(port_) + "', '" +
                 (dir_ / "srv") + "' },\n"
             "          cwd = '" + dir_.path() + "', health = 'http://127.0.0.1:" + std::to_string(port_) + "/health' },\n"
             "}\n"
             "function M.define()\n"
             "  for name, def in pairs(M.list) do def.name = name; service.define(def) end\n"
             "end\n"
             "return M\n");
  write_file(books + "/start.lua",
             "local services = require('services')\n"
             "runbook { name = 'start', version = '1.0.0' }\n"
             "step('start', function() services.define(); service.start('web') end)\n");
  write_file(books + "/stop.lua",
             "local services = require('services')\n"
             "runbook { name = 'stop', version = '1.0.0' }\n"
             "step('stop', function() services.define(); local r = service.stop('web'); assert(r.changed, json.encode(r)) end)\n");
  std::map<std::string, std::string> env = {{"RUNBOOK_STATE_DIR", state_}};
  auto a = run_cli({"exec", books + "/start.lua", "--journal", dir_ / "j.db"}, env);
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  // The first runbook has exited; its service runs on.
  EXPECT_TRUE(port_open(port_));
  pid_t pid = pid_in(state_ + "/web.pid");
  EXPECT_TRUE(alive(pid));
  auto b = run_cli({"exec", books + "/stop.lua", "--journal", dir_ / "j.db"}, env);
  ASSERT_EQ(b.code, 0) << b.out << b.err;
  EXPECT_TRUE(wait_gone(pid, 1000));
  EXPECT_FALSE(port_open(port_));
}

TEST_F(Svc, ProcessBackend_DryRunChangesNothingAndShowsRunningToStopped) {
  const std::string def = R"lua(
    service.define{ name = "a", argv = { "sh", "-c", "while :; do sleep 1; done", p.dir }, settle = "200ms" }
    service.define{ name = "b", argv = { "sh", "-c", "while :; do sleep 1; done", p.dir .. "/b" }, settle = "200ms" }
  )lua";
  auto live = run(def + "service.start('a')");
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  pid_t pid = result_of(live, "service.start")["pid"].get<pid_t>();
  std::string before = sha256_tree(state_);

  auto dry = run(def + R"lua(
    local s = service.stop("a")
    assert(s.state == "stopped" and s.planned, json.encode(s))
    local r = service.restart("a")
    local b = service.start("b")
    assert(b.state == "running" and b.changed == true, json.encode(b))
    local again = service.start("a")
    assert(again.changed == false, json.encode(again))
  )lua", Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  const EffectEvent* stop = event_of(dry, "service.stop");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, "planned");
  EXPECT_EQ(stop->preview["text"], "a: running (pid " + std::to_string(pid) + ") → stopped");
  EXPECT_EQ(stop->result["pid"], pid);
  EXPECT_EQ(event_of(dry, "service.start")->preview["text"], "b: stopped → running");
  // The plan follows itself: after the planned restart, a is running as planned.
  EXPECT_EQ(event_of(dry, "service.start", 1)->preview["text"], "a: running (as planned) already; nothing to do");
  EXPECT_EQ(sha256_tree(state_), before);
  auto p = os::read_process(pid);
  ASSERT_TRUE(p && alive(pid));
  EXPECT_EQ(pid_in(state_ + "/a.pid"), pid);
  EXPECT_EQ(record_of(state_ + "/a.pid")["started"].get<uint64_t>(), p->start_ticks);
  EXPECT_FALSE(stdfs::exists(state_ + "/b.pid"));
  run(def + "service.stop('a')");
  EXPECT_TRUE(wait_gone(pid, 1000));
}

TEST_F(Svc, Define_BadInputNamesTheArgumentAndUnknownServicesAreClear) {
  auto r = run("service.define{ name = 'x', backend = 'upstart' }");
  EXPECT_NE(err_of(r).find("bad argument 'backend' to 'service.define' (one of process, systemd, supervisor, pm2, compose"),
            std::string::npos) << err_of(r);
  r = run("service.define{ name = 'x' }");
  EXPECT_NE(err_of(r).find("bad argument 'argv' to 'service.define'"), std::string::npos) << err_of(r);
  r = run("service.define{ name = '../etc/x', argv = { 'true' } }");
  EXPECT_NE(err_of(r).find("bad argument 'name' to 'service.define'"), std::string::npos) << err_of(r);
  r = run("service.define{ name = 'a', argv = { 'true' } }\nservice.stop('nope')");
  EXPECT_NE(err_of(r).find("service.stop: no service 'nope' is defined in this run"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("(defined: a)"), std::string::npos) << err_of(r);
  r = run("service.define{ name = 'm', argv = { 'no-such-program-xyz' } }\nservice.start('m')");
  EXPECT_NE(err_of(r).find("service.start: m: 'no-such-program-xyz' not found on PATH"), std::string::npos) << err_of(r);
}

TEST_F(Svc, SupervisorBackend_RealSupervisordOnAPrivateSocket) {
  ASSERT_FALSE(os::which("supervisord").empty()) << "supervisord is missing: apt-get install supervisor";
  std::string d = dir_.path();
  stdfs::create_directories(dir_ / "srv");
  std::string conf = d + "/supervisord.conf";
  write_file(conf, "[unix_http_server]\nfile=" + d + "/supervisor.sock\n"
                   "[supervisord]\nlogfile=" + d + "/supervisord.log\npidfile=" + d + "/supervisord.pid\n"
                   "childlogdir=" + d + "\nnodaemon=true\nuser=root\n"
                   "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                   "[supervisorctl]\nserverurl=unix://" + d + "/supervisor.sock\n"
                   "[program:web]\ncommand=python3 " + kSupport + "/http_server.py " + std::to_string(port_) + " " + d + "/srv\n"
                   "autostart=false\nstartsecs=1\nstopwaitsecs=5\n");
  Child supervisord({"supervisord", "-c", conf}, {}, d + "/supervisord.out");
  for (int i = 0; i < 250 && !stdfs::exists(d + "/supervisor.sock"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(stdfs::exists(d + "/supervisor.sock")) << read_file(d + "/supervisord.out");
  auto r = run(R"lua(
    service.define{ name = "site", backend = "supervisor", program = "web", config = p.dir .. "/supervisord.conf",
                    health = "http://127.0.0.1:" .. p.port .. "/health" }
    assert(service.status("site").state == "stopped")
    local s = service.start("site")
    assert(s.state == "running" and s.changed and s.pid, json.encode(s))
    assert(service.start("site").changed == false)
    local st = service.status("site")
    assert(st.state == "running" and st.pid == s.pid and st.detail:find("RUNNING"), json.encode(st))
    local x = service.stop("site")
    assert(x.state == "stopped" and x.changed and x.pid == s.pid, json.encode(x))
    assert(service.stop("site").changed == false)
    -- the same through the socket instead of the config file
    service.define{ name = "site2", backend = "supervisor", program = "web", socket = p.dir .. "/supervisor.sock" }
    local r = service.restart("site2")
    assert(r.state == "running" and r.pid, json.encode(r))
    service.stop("site2")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  pid_t pid = result_of(r, "service.start")["pid"].get<pid_t>();
  EXPECT_FALSE(alive(pid));
  EXPECT_FALSE(port_open(port_));
  auto dead = run("service.define{ name = 'gone', backend = 'supervisor', socket = p.dir .. '/nope.sock' }\n"
                  "service.status('gone')");
  EXPECT_NE(err_of(dead).find("service.status: supervisorctl -s unix://"), std::string::npos) << err_of(dead);
}

namespace {

// Stops the private pm2 daemon of a test (PM2_HOME = home) however the test ends.
struct Pm2Kill {
  std::string home;
  ~Pm2Kill() {
    os::ProcessSpec k;
    k.argv = {"pm2", "kill"};
    k.env = {{"PM2_HOME", home}};
    k.timeout = std::chrono::seconds(30);
    os::run_process(k);
  }
};

}  // namespace

TEST_F(Svc, Pm2Backend_RealPm2WithAPrivateHome) {
  ASSERT_FALSE(os::which("pm2").empty()) << "pm2 is missing: npm install -g pm2@5";
  std::string home = dir_ / "pm2home";
  write_file(dir_ / "app.js",
             "const http = require('http');\n"
             "http.createServer((q, s) => { s.writeHead(200); s.end('ok ' + process.pid); })\n"
             "  .listen(parseInt(process.argv[2]), '127.0.0.1');\n");
  Pm2Kill killer{home};
  auto r = run(R"lua(
    service.define{ name = "api", backend = "pm2", argv = { "node", p.dir .. "/app.js", p.port }, cwd = p.dir,
                    env = { PM2_HOME = p.dir .. "/pm2home" }, health = "http://127.0.0.1:" .. p.port .. "/" }
    assert(service.status("api").state == "stopped")
    local s = service.start("api")
    assert(s.state == "running" and s.changed and s.pid and s.healthy, json.encode(s))
    assert(service.start("api").changed == false)
    local r = service.restart("api")
    assert(r.state == "running" and r.pid ~= s.pid and r.previous_pid == s.pid, json.encode(r))
    local x = service.stop("api")
    assert(x.state == "stopped" and x.changed, json.encode(x))
    assert(service.stop("api").changed == false)
    -- pm2 knows the app now: start is `pm2 start api`
    local again = service.start("api")
    assert(again.state == "running", json.encode(again))
    service.stop("api")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  pid_t first = result_of(r, "service.start")["pid"].get<pid_t>();
  EXPECT_FALSE(alive(first));
  EXPECT_FALSE(port_open(port_));
}

// app = "all" is pm2's every app (the seeds' `pm2 restart all`): a restart gives each a new
// process; the status says running only when all are online and lists them.
TEST_F(Svc, Pm2AllRestartsEveryApp) {
  ASSERT_FALSE(os::which("pm2").empty()) << "pm2 is missing: npm install -g pm2@5";
  std::string home = dir_ / "pm2home";
  write_file(dir_ / "idle.js", "setInterval(() => {}, 1000);\n");
  Pm2Kill killer{home};
  auto r = run(R"lua(
    local env = { PM2_HOME = p.dir .. "/pm2home" }
    service.define{ name = "all", backend = "pm2", app = "all", env = env }
    assert(service.status("all").detail == "pm2 has no apps", service.status("all").detail)
    for _, n in ipairs{ "api", "queue-worker", "frontend" } do
      service.define{ name = n, backend = "pm2", argv = { "node", p.dir .. "/idle.js" }, env = env }
      service.start(n)
    end
    local before = {}
    for _, n in ipairs{ "api", "queue-worker", "frontend" } do before[n] = service.status(n).pid end
    local st = service.status("all")
    assert(st.state == "running", json.encode(st))
    assert(st.detail:find("queue-worker online", 1, true) and st.detail:find("frontend online", 1, true), st.detail)
    service.restart("all")
    for _, n in ipairs{ "api", "queue-worker", "frontend" } do
      local now = service.status(n)
      assert(now.state == "running" and now.pid and now.pid ~= before[n], n .. " was not restarted: " .. json.encode(now))
    end
    service.stop("queue-worker")
    assert(service.status("all").state == "partial", "one app down is not all running")
    service.stop("all")
    assert(service.status("api").state == "stopped", "pm2 stop all left api running")
    assert(service.status("all").state == "stopped")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
}

namespace {

// A fake program (a script from tests/support that logs the argv it gets to <dir>/calls.log)
// first in PATH while this lives.
struct FakeOnPath {
  std::string old_path = std::getenv("PATH");
  FakeOnPath(const std::string& dir, const std::string& script, const std::string& name) {
    std::string bin = dir + "/bin";
    stdfs::create_directories(bin);
    stdfs::copy_file(kSupport + "/" + script, bin + "/" + name);
    ::setenv("PATH", (bin + ":" + old_path).c_str(), 1);
  }
  ~FakeOnPath() { ::setenv("PATH", old_path.c_str(), 1); }
};

}  // namespace

TEST_F(Svc, SystemdBackend_IssuesExactCommands_NoSystemdHere) {
  // systemd cannot run in this container.
  FakeOnPath fake(dir_.path(), "svc_fake_systemctl.sh", "systemctl");
  auto r = run(R"lua(
    service.define{ name = "backend", backend = "systemd", unit = "shop-backend.service", env = { SVC_FAKE_DIR = p.dir } }
    local s = service.start("backend")
    assert(s.state == "running" and s.pid == 4242 and s.changed, json.encode(s))
    assert(service.start("backend").changed == false)
    service.restart("backend")
    local x = service.stop("backend")
    assert(x.state == "stopped" and x.changed, json.encode(x))
    assert(service.stop("backend").changed == false)
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const std::string U = " shop-backend.service\n";
  const std::string active = "systemctl is-active" + U + "systemctl show --property=MainPID --value" + U;
  EXPECT_EQ(read_file(dir_ / "calls.log"),
            "systemctl is-active" + U + "systemctl start" + U + active +  // start
            active +                                                       // start: already running
            active + "systemctl restart" + U + active +                    // restart
            active + "systemctl stop" + U + "systemctl is-active" + U +    // stop
            "systemctl is-active" + U);                                    // stop: already stopped
}

TEST_F(Svc, ComposeBackend_IssuesExactCommands_NoDockerHere) {
  // No Docker daemon here.
  FakeOnPath fake(dir_.path(), "svc_fake_docker.sh", "docker");
  auto r = run(R"lua(
    service.define{ name = "web", backend = "compose", config = p.dir .. "/compose.yml", project = "shop",
                    compose_command = "docker compose", env = { SVC_FAKE_DIR = p.dir } }
    assert(service.status("web").state == "stopped")
    local s = service.start("web")
    assert(s.state == "running" and s.changed, json.encode(s))
    service.restart("web")
    local x = service.stop("web")
    assert(x.state == "stopped" and x.changed, json.encode(x))
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const std::string B = "docker compose -f " + (dir_ / "compose.yml") + " -p shop ";
  const std::string ps = B + "ps --format json web\n";
  EXPECT_EQ(read_file(dir_ / "calls.log"),
            ps +                                   // status
            ps + B + "up -d web\n" + ps +          // start: up, so a changed image or config applies
            ps + B + "up -d --force-recreate --no-deps web\n" + ps +  // restart: a new container
            ps + B + "stop web\n" + ps);           // stop
}

TEST_F(Svc, ProcFind_ListsRealProcessesNeverTheRunbookOrItsAncestors) {
  write_file(dir_ / "app.py", "import time\ntime.sleep(300)\n");
  Child target({"sh", "-c", "cd " + dir_.path() + " && exec python3 app.py"});
  wait_exec({target.pid()});
  std::string code = R"lua(
    local found = proc.find{ argv_match = "app%.py", cwd = p.dir }
    assert(#found == 1, json.encode(found))
    assert(found[1].cmdline:find("python3.* app%.py$") and found[1].started and found[1].user == "root", json.encode(found))
    -- the test process runs this runbook: it and its ancestors are never listed (other
    -- service_test processes may run beside it under ctest -j)
    for _, x in ipairs(proc.find{ exe = "service_test" }) do
      assert(x.pid ~= SELF and x.pid ~= PARENT, json.encode(x))
    end
    return found[1].pid
  )lua";
  code = std::regex_replace(code, std::regex("SELF"), std::to_string(getpid()));
  code = std::regex_replace(code, std::regex("PARENT"), std::to_string(getppid()));
  auto r = run(code);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  auto found = result_of(r, "proc.find");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0]["pid"], target.pid());
  EXPECT_EQ(found[0]["cwd"], dir_.path());
}

TEST_F(Svc, ProcSignal_HitsOnlyWhatExeAndCwdNarrowTo_NotDecoysWithThePatternElsewhere) {
  std::string a = dir_ / "a", b = dir_ / "b";
  write_file(a + "/app.py", "import time\ntime.sleep(300)\n");
  write_file(b + "/app.py", "import time\ntime.sleep(300)\n");
  Child target({"sh", "-c", "cd " + a + " && exec python3 app.py"});
  // Same cwd, "app.py" only as an argument of a shell; and the same program in another directory.
  Child decoy_arg({"sh", "-c", "cd " + a + " && exec sh -c 'while :; do sleep 1; done' app.py"});
  Child decoy_cwd({"sh", "-c", "cd " + b + " && exec python3 app.py"});
  wait_exec({target.pid(), decoy_cwd.pid()});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // decoy_arg: a shell, nothing to wait for
  auto r = run(R"lua(
    local all = proc.find{ argv_match = "app%.py", user = "root" }
    local dir_hits = 0
    for _, x in ipairs(all) do if x.cwd:sub(1, #p.dir) == p.dir then dir_hits = dir_hits + 1 end end
    assert(dir_hits == 3, "the pattern alone matches all three: " .. json.encode(all))
    local s = proc.signal{ argv_match = "app%.py", exe = "python3", cwd = p.dir .. "/a", signal = "TERM", wait = "5s" }
    assert(#s.signalled == 1 and #s.exited == 1 and s.signalled[1] == s.exited[1], json.encode(s))
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(result_of(r, "proc.signal")["signalled"][0], target.pid());
  EXPECT_FALSE(alive(target.pid()));
  EXPECT_TRUE(alive(decoy_arg.pid()));
  EXPECT_TRUE(alive(decoy_cwd.pid()));
}

TEST_F(Svc, ProcSignal_DryRunListsWhoWouldBeHitAndSignalsNobody) {
  write_file(dir_ / "app.py", "import time\ntime.sleep(300)\n");
  Child target({"sh", "-c", "cd " + dir_.path() + " && exec python3 app.py"});
  wait_exec({target.pid()});
  auto r = run(R"lua(
    local s = proc.signal{ argv_match = "app%.py", cwd = p.dir, signal = "KILL" }
    assert(#s.signalled == 1 and s.planned, json.encode(s))
  )lua", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* e = event_of(r, "proc.signal");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, "planned");
  std::string text = e->preview["text"];
  EXPECT_NE(text.find("would send KILL to 1 process: " + std::to_string(target.pid()) + " ("), std::string::npos) << text;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(alive(target.pid()));
}

TEST_F(Svc, ProcSignal_RefusesPid1TheRunbookAndItsParent_KillAfterEndsATermIgnorer) {
  auto r = run("proc.signal{ pid = 1 }");
  EXPECT_NE(err_of(r).find("bad argument 'pid' to 'proc.signal' (refuses pid 1)"), std::string::npos) << err_of(r);
  r = run("proc.signal{ pid = " + std::to_string(::getpid()) + " }");
  EXPECT_NE(err_of(r).find("refuses the runbook itself"), std::string::npos) << err_of(r);
  r = run("proc.signal{ pid = " + std::to_string(::getppid()) + " }");
  EXPECT_NE(err_of(r).find("refuses the runbook's parent"), std::string::npos) << err_of(r);
  r = run("proc.signal{ signal = 'TERM' }");
  EXPECT_NE(err_of(r).find("give at least one of exe, argv_match, cwd, user, pid"), std::string::npos) << err_of(r);

  Child stubborn({"sh", "-c", "trap '' TERM; while :; do sleep 0.2; done", dir_.path()});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // More matches than max: nothing is signalled.
  auto m = run("local s = proc.signal{ argv_match = p.dir, max = 0, check = false }\n"
               "assert(s.ok == false and #s.signalled == 0 and #s.processes == 1, json.encode(s))");
  ASSERT_EQ(m.result.exit_code, 0) << err_of(m);
  EXPECT_TRUE(alive(stubborn.pid()));
  auto t = run("local s = proc.signal{ pid = " + std::to_string(stubborn.pid()) + ", wait = '500ms', check = false }\n"
               "assert(s.ok == false and #s.still_running == 1, json.encode(s))\n"
               "local k = proc.signal{ pid = " + std::to_string(stubborn.pid()) + ", kill_after = '300ms' }\n"
               "assert(#k.killed == 1 and #k.exited == 1, json.encode(k))\n");
  ASSERT_EQ(t.result.exit_code, 0) << err_of(t);
  EXPECT_FALSE(alive(stubborn.pid()));
}

TEST_F(Svc, Verify_TellsResumeWhetherTheServiceIsInTheTargetState) {
  Dispatcher disp(nullptr, nullptr, RunOptions{});
  const Registry& reg = builtin_registry();
  auto call = [&](const std::string& name, json args) {
    auto r = disp.call(*reg.find(name), std::move(args), "test");
    EXPECT_TRUE(r.ok) << name << ": " << r.error;
    return r.result;
  };
  call("service.define", {{"name", "v"}, {"argv", {"sh", "-c", "while :; do sleep 1; done", dir_.path()}}, {"settle", "100ms"}});
  const Effect* start = reg.find("service.start");
  const Effect* stop = reg.find("service.stop");
  Args a = validate_args("service.start", start->args, {{"name", "v"}});
  EXPECT_EQ(start->verify(disp, a), false);
  EXPECT_EQ(stop->verify(disp, a), true);
  pid_t pid = call("service.start", {{"name", "v"}})["pid"].get<pid_t>();
  EXPECT_EQ(start->verify(disp, a), true);
  EXPECT_EQ(stop->verify(disp, a), false);
  call("service.stop", {{"name", "v"}});
  EXPECT_EQ(stop->verify(disp, a), true);
  EXPECT_FALSE(alive(pid));
}

TEST_F(Svc, Define_SecretLookingEnvValuesAreRedactedFromTheJournal) {
  auto r = run(R"lua(
    local d = service.define{ name = "s", argv = { "true" },
                              env = { DB_PASSWORD = "hunter2-xyz", DATABASE_URL = "postgres://app:pw-in-url-777@db/app", PORT = "8080" } }
    print(d.env.PORT)
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  std::string shown = event_of(r, "service.define")->result.dump();
  EXPECT_EQ(shown.find("hunter2-xyz"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("pw-in-url-777"), std::string::npos) << shown;
  EXPECT_NE(shown.find("8080"), std::string::npos) << shown;
}
