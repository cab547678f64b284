// Adopting processes runbook did not start (issue 11, item 4 and 5): a Python HTTP server started
// by the test the seeds' way (`python3 -m http.server PORT &` from a shell that then exits) is
// found by its port (/proc/net/tcp -> socket inode -> /proc/*/fd) or by an exact argv prefix,
// stopped by service.stop (TERM, grace, KILL) with the port checked free; a start while another
// program holds the port fails naming it and leaves nothing running or registered; several
// unrelated matches are an error naming the pids; a dry-run names the pid it would stop and
// changes nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/strings.h"
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

const EffectEvent* event_of(const LuaRun& r, const std::string& name, size_t n = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && n-- == 0) return &e;
  return nullptr;
}

bool wait_gone(pid_t pid, int ms = 10000) {
  for (int i = 0; i < ms / 20; ++i) {
    if (!os::is_alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !os::is_alive(pid);
}

// Whether anything accepts connections on 127.0.0.1:port now.
bool port_open(int port) { return wait_for_port(port, 50); }

// The live processes whose argv starts with `prefix`, by service.define's cmdline rule: the first
// element matches argv[0] or its file name ("python3" is also /usr/bin/python3, or the
// /root/.pyenv/versions/3.11.7/bin/python3 that a pyenv shim execs).
std::vector<pid_t> matching(const std::vector<std::string>& prefix) {
  std::vector<pid_t> out;
  for (const auto& p : os::list_processes())
    if (p.state != 'Z' && os::argv_has_prefix(p.argv, prefix)) out.push_back(p.pid);
  return out;
}

// How the engine names a process in its messages: its argv as /proc/PID/cmdline has it.
std::string argv_of(pid_t pid) {
  auto a = os::read_argv(pid);
  return a ? display_argv(*a) : "?";
}

class Adopt : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = dir_ / "state";
    ::setenv("RUNBOOK_STATE_DIR", state_.c_str(), 1);
    stdfs::create_directories(dir_ / "srv");
  }
  void TearDown() override {
    ::unsetenv("RUNBOOK_STATE_DIR");
    for (const auto& p : os::list_processes())
      if (p.pid != ::getpid() && (p.cmdline.find(dir_.path()) != std::string::npos ||
                                  p.cwd.rfind(dir_.path(), 0) == 0))
        ::kill(p.pid, SIGKILL);
  }

  // One step running `body`, with params dir, support, port.
  LuaRun run(const std::string& body, Mode mode = Mode::Live) {
    std::string code =
        "runbook { name = 'adopt', version = '1.0.0', params = { dir = { type = 'path' }, "
        "support = { type = 'path' }, port = { type = 'int' }, code = { type = 'string' } } }\n"
        "step('s', function(p)\n" + body + "\nend)\n";
    std::string rd = dir_ / ("run" + std::to_string(++runs_));
    stdfs::create_directories(rd);
    return run_lua(rd, code, mode, {{"dir", dir_.path()}, {"support", kSupport}, {"port", std::to_string(port_)}, {"code", code_}});
  }

  // `python3 -m http.server PORT &` from a shell that exits at once, in the temp dir: orphaned,
  // not a child of the test, no pidfile anywhere. Returns the server's pid once it listens.
  pid_t start_by_hand(int port) {
    std::string ps = std::to_string(port);
    os::Detached sh = os::spawn_detached(
        {{"sh", "-c", "exec >/dev/null 2>&1; python3 -m http.server " + ps + " --bind 127.0.0.1 &"},
         dir_.path(), {}, dir_ / "by-hand.log"});
    EXPECT_EQ(sh.error, "");
    EXPECT_TRUE(wait_for_port(port, 15000)) << "python3 -m http.server did not listen on " << ps;
    auto pids = matching({"python3", "-m", "http.server", ps});
    EXPECT_EQ(pids.size(), 1u);
    return pids.empty() ? 0 : pids[0];
  }

  // A python3 that sleeps, argv { python3, -c, <code>, tag }, its own process group; `tag` is a path
  // in the temp dir (so TearDown finds it), its log beside it.
  pid_t sleeper(const std::string& tag) {
    os::Detached d = os::spawn_detached(
        {{"python3", "-c", code_, tag}, dir_.path(), {}, tag + ".log"});
    EXPECT_EQ(d.error, "");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < until) {
      auto a = os::read_argv(d.pid);
      if (a && a->size() == 4 && os::argv_has_prefix(*a, {"python3"}) && (*a)[3] == tag) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return d.pid;
  }

  TempDir dir_;
  std::string state_;
  int port_ = free_port();
  // The sleepers' python code, unique to this test: tests run side by side (ctest -j), and a
  // cmdline prefix must never match another test's sleeper.
  std::string code_ = "import time; time.sleep(600)  # " + dir_.path();
  int runs_ = 0;
};

}  // namespace

TEST_F(Adopt, StopByPort_StopsAServerStartedByHand_ThePortIsFree) {
  pid_t pid = start_by_hand(port_);
  ASSERT_GT(pid, 0);
  auto r = run(R"lua(
    service.define{ name = "web", port = p.port }
    local st = service.status("web")
    assert(st.state == "running" and st.adopted == true and st.port == p.port and st.since, json.encode(st))
    local s = service.stop("web")
    assert(s.state == "stopped" and s.changed == true and s.adopted == true and s.signal == "TERM", json.encode(s))
    assert(s.port_released == true and s.pid == st.pid, json.encode(s))
    local after = service.status("web")
    assert(after.state == "stopped" and after.pid == nil and not after.adopted, json.encode(after))
    assert(service.stop("web").changed == false)
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* st = event_of(r, "service.status");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->result["pid"], pid) << st->result.dump();
  EXPECT_NE(st->result["detail"].get<std::string>().find("found by port " + std::to_string(port_)), std::string::npos)
      << st->result.dump();
  EXPECT_TRUE(wait_gone(pid));
  EXPECT_FALSE(port_open(port_));
  EXPECT_TRUE(matching({"python3", "-m", "http.server", std::to_string(port_)}).empty());
}

TEST_F(Adopt, RestartByPort_StopsTheOneStartedByHand_ThenRunsItsOwnThere) {
  pid_t pid = start_by_hand(port_);
  ASSERT_GT(pid, 0);
  auto r = run(R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", port = p.port }
    local x = service.restart("web")
    assert(x.state == "running" and x.changed and not x.adopted and x.pid ~= x.previous_pid, json.encode(x))
    local st = service.status("web")
    assert(st.pid == x.pid and not st.adopted, json.encode(st))
    service.stop("web")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(event_of(r, "service.restart")->result["previous_pid"], pid);
  EXPECT_TRUE(wait_gone(pid));
  EXPECT_FALSE(port_open(port_));
}

TEST_F(Adopt, StartWhileAnotherProgramHoldsThePort_FailsNamingIt_LeavesNothingRunningOrRegistered) {
  pid_t other = start_by_hand(port_);
  ASSERT_GT(other, 0);
  // The service is http_server.py; the port's holder is another program: not adopted.
  const std::string def = R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", port = p.port,
                    cmdline = { "python3", p.support .. "/http_server.py" } }
  )lua";
  auto r = run(def + R"lua(
    local st = service.status("web")
    assert(st.state == "stopped" and st.stale == true, json.encode(st))
    service.start("web")
  )lua");
  ASSERT_NE(r.result.exit_code, 0);
  EXPECT_NE(err_of(r).find("web: cannot start: port " + std::to_string(port_) + " is held by pid " +
                           std::to_string(other) + " (" + argv_of(other) + ")"),
            std::string::npos)
      << err_of(r);
  const EffectEvent* st = event_of(r, "service.status");
  ASSERT_TRUE(st);
  EXPECT_NE(st->result["detail"].get<std::string>().find("which does not match cmdline"), std::string::npos)
      << st->result.dump();
  EXPECT_TRUE(os::is_alive(other)) << "the other program was touched";
  EXPECT_TRUE(matching({"python3", kSupport + "/http_server.py", std::to_string(port_)}).empty()) << "the failed start left a process";
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid")) << "the failed start left it registered";
  // A stop does not touch what is not the service.
  auto s = run(def + "assert(service.stop('web').changed == false)");
  ASSERT_EQ(s.result.exit_code, 0) << err_of(s);
  EXPECT_TRUE(os::is_alive(other));
  EXPECT_TRUE(port_open(port_));
}

TEST_F(Adopt, StartWithoutPort_TheNewProcessDiesOnAddressInUse_FailsAndUnregisters) {
  pid_t other = start_by_hand(port_);
  ASSERT_GT(other, 0);
  auto r = run(R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", settle = "5s" }
    service.start("web")
  )lua");
  ASSERT_NE(r.result.exit_code, 0);
  EXPECT_NE(err_of(r).find("web exited during startup"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("Address already in use"), std::string::npos) << err_of(r);
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid"));
  EXPECT_TRUE(matching({"python3", kSupport + "/http_server.py", std::to_string(port_)}).empty());
  EXPECT_TRUE(os::is_alive(other));
}

TEST_F(Adopt, StartThatNeverBecomesHealthy_IsStoppedAndUnregistered) {
  write_file(dir_ / "srv/status", "503\n");
  auto r = run(R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", port = p.port, start_timeout = "3s",
                    health = "http://127.0.0.1:" .. p.port .. "/health" }
    service.start("web")
  )lua");
  ASSERT_NE(r.result.exit_code, 0);
  EXPECT_NE(err_of(r).find("web not healthy after"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("what it started was stopped"), std::string::npos) << err_of(r);
  EXPECT_TRUE(matching({"python3", kSupport + "/http_server.py", std::to_string(port_)}).empty()) << "the unhealthy process still runs";
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid"));
  EXPECT_FALSE(port_open(port_));
}

TEST_F(Adopt, StartWithPort_ThatNeverListensThere_IsStoppedAndUnregistered) {
  auto r = run(R"lua(
    service.define{ name = "web", argv = { "python3", "-c", p.code, p.dir },
                    cwd = p.dir, log = "web.log", port = p.port, start_timeout = "2s" }
    service.start("web")
  )lua");
  ASSERT_NE(r.result.exit_code, 0);
  EXPECT_NE(err_of(r).find("web did not listen on port " + std::to_string(port_) + " within"), std::string::npos)
      << err_of(r);
  EXPECT_NE(err_of(r).find("what it started was stopped"), std::string::npos) << err_of(r);
  EXPECT_TRUE(matching({"python3", "-c", code_, dir_.path()}).empty())
      << "the process that never listened still runs";
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid")) << "the failed start left it registered";
}

TEST_F(Adopt, StartWithPort_WaitsUntilItListens_ThenStopReleasesThePort) {
  auto r = run(R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", port = p.port }
    local s = service.start("web")
    assert(s.state == "running" and s.changed and not s.adopted, json.encode(s))
    local st = service.status("web")
    assert(st.pid == s.pid and not st.adopted, json.encode(st))
    local x = service.stop("web")
    assert(x.port_released == true and not x.adopted, json.encode(x))
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  // No health URL, 500ms settle: it is the port that says it is up.
  EXPECT_FALSE(port_open(port_));
  EXPECT_FALSE(stdfs::exists(state_ + "/web.pid"));
}

TEST_F(Adopt, Cmdline_ExactArgvPrefixOnly_SeveralUnrelatedMatchesAreAnErrorNamingThePids) {
  pid_t a = sleeper(dir_ / "a");
  pid_t b = sleeper(dir_ / "b");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  // Both match the first three elements: no guess.
  auto amb = run(R"lua(
    service.define{ name = "job", cmdline = { "python3", "-c", p.code } }
    service.status("job")
  )lua");
  ASSERT_NE(amb.result.exit_code, 0);
  std::string e = err_of(amb);
  EXPECT_NE(e.find("job: 2 processes match cmdline"), std::string::npos) << e;
  EXPECT_NE(e.find("pid " + std::to_string(std::min(a, b))), std::string::npos) << e;
  EXPECT_NE(e.find("pid " + std::to_string(std::max(a, b))), std::string::npos) << e;
  // A stop of an ambiguous definition fails the same way and signals nobody.
  auto amb_stop = run(R"lua(
    service.define{ name = "job", cmdline = { "python3", "-c", p.code } }
    service.stop("job")
  )lua");
  EXPECT_NE(err_of(amb_stop).find("2 processes match cmdline"), std::string::npos) << err_of(amb_stop);
  EXPECT_TRUE(os::is_alive(a) && os::is_alive(b));

  // Whole elements only: a substring of an element, or a prefix of the path, matches nothing.
  auto none = run(R"lua(
    service.define{ name = "sub", cmdline = { "python3", "-c", "import time" } }
    assert(service.status("sub").state == "stopped")
    service.define{ name = "pre", cmdline = { "python3", "-c", p.code, p.dir } }
    assert(service.status("pre").state == "stopped")
    service.define{ name = "pat", cmdline = { "python.*" } }
    assert(service.status("pat").state == "stopped")
  )lua");
  ASSERT_EQ(none.result.exit_code, 0) << err_of(none);

  // The full argv names one: stop stops that one; the first element matches by file name too.
  auto one = run(R"lua(
    service.define{ name = "job", cmdline = { "/usr/bin/python3", "-c", p.code, p.dir .. "/a" } }
    local full = service.status("job")
    assert(full.state == "stopped", "an absolute program matched a bare argv[0]: " .. json.encode(full))
    service.define{ name = "job", cmdline = { "python3", "-c", p.code, p.dir .. "/a" } }
    local st = service.status("job")
    assert(st.state == "running" and st.adopted, json.encode(st))
    local s = service.stop("job")
    assert(s.changed and s.pid == st.pid and s.port_released == nil, json.encode(s))
  )lua");
  ASSERT_EQ(one.result.exit_code, 0) << err_of(one);
  EXPECT_EQ(event_of(one, "service.status", 1)->result["pid"], a);
  EXPECT_TRUE(wait_gone(a));
  EXPECT_TRUE(os::is_alive(b)) << "the other match was hit";
}

TEST_F(Adopt, PortAndCmdline_BothMustMatch) {
  pid_t pid = start_by_hand(port_);
  ASSERT_GT(pid, 0);
  std::string argv = argv_of(pid);  // before the stop below ends it
  auto r = run(R"lua(
    service.define{ name = "web", port = p.port, cmdline = { "python3", "app.py" } }
    local no = service.status("web")
    assert(no.state == "stopped" and no.stale, json.encode(no))
    service.define{ name = "web", port = p.port, cmdline = { "python3", "-m", "http.server" } }
    local yes = service.status("web")
    assert(yes.state == "running" and yes.adopted, json.encode(yes))
    service.stop("web")
  )lua");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_NE(event_of(r, "service.status")->result["detail"].get<std::string>().find(
                "port " + std::to_string(port_) + " is held by pid " + std::to_string(pid) + " (" + argv +
                "), which does not match cmdline python3 app.py"),
            std::string::npos)
      << event_of(r, "service.status")->result.dump();
  EXPECT_EQ(event_of(r, "service.status", 1)->result["pid"], pid);
  EXPECT_TRUE(wait_gone(pid));
  EXPECT_FALSE(port_open(port_));
}

TEST_F(Adopt, DryRun_PreviewNamesThePidItWouldStop_AndChangesNothing) {
  pid_t pid = start_by_hand(port_);
  ASSERT_GT(pid, 0);
  auto dry = run(R"lua(
    service.define{ name = "web", port = p.port }
    local s = service.stop("web")
    assert(s.state == "stopped" and s.planned and s.pid == s.previous_pid, json.encode(s))
    -- The plan follows itself: stopped as planned, so a start is planned (the port is free then).
    assert(service.status("web").state == "stopped")
  )lua", Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  const EffectEvent* stop = event_of(dry, "service.stop");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, "planned");
  std::string text = stop->preview["text"].get<std::string>();
  EXPECT_NE(text.find("web: running (pid " + std::to_string(pid) + ", not started by runbook, found by port " +
                      std::to_string(port_) + ": " + argv_of(pid)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("→ stopped"), std::string::npos) << text;
  EXPECT_EQ(stop->result["pid"], pid);
  EXPECT_EQ(stop->preview["basis"], json({{"state", "running"}}));
  EXPECT_TRUE(os::is_alive(pid));
  EXPECT_TRUE(port_open(port_));
  EXPECT_FALSE(stdfs::exists(state_));

  // A start the live run would refuse (the port is another program's) fails the rehearsal there.
  auto refused = run(R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", tostring(p.port), p.dir .. "/srv" },
                    port = p.port, cmdline = { "python3", p.support .. "/http_server.py" } }
    service.start("web")
  )lua", Mode::DryRun);
  EXPECT_EQ(refused.result.exit_code, 1);
  EXPECT_NE(err_of(refused).find("the live run would fail here: web: cannot start: port " + std::to_string(port_) +
                                 " is held by pid " + std::to_string(pid)),
            std::string::npos)
      << err_of(refused);
  EXPECT_TRUE(os::is_alive(pid));
  EXPECT_TRUE(matching({"python3", kSupport + "/http_server.py", std::to_string(port_)}).empty());
}

TEST_F(Adopt, Define_PortAndCmdlineAreCheckedAndOnlyForTheProcessBackend) {
  auto r = run("service.define{ name = 'x', port = 70000 }");
  EXPECT_NE(err_of(r).find("bad argument 'port' to 'service.define' (a TCP port 1-65535 expected, got 70000"),
            std::string::npos)
      << err_of(r);
  r = run("service.define{ name = 'x', cmdline = {} }");
  EXPECT_NE(err_of(r).find("bad argument 'cmdline' to 'service.define'"), std::string::npos) << err_of(r);
  r = run("service.define{ name = 'x', backend = 'pm2', port = 80 }");
  EXPECT_NE(err_of(r).find("bad argument 'port' to 'service.define' (only the process backend"), std::string::npos)
      << err_of(r);
  // Adopt-only (no argv): it can be stopped, not started.
  r = run("service.define{ name = 'x', port = p.port }\nservice.start('x')");
  EXPECT_NE(err_of(r).find("x: service.define has no argv"), std::string::npos) << err_of(r);
}
