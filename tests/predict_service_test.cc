// Dry-run predictions of service.*, http, proc and exec against real processes (issue 9 A/B/C):
// a rehearsal's service.status after a planned stop/restart answers from the plan, HTTP answers
// and process lists after a planned change are unknown (never the old world's), a change the live
// run would refuse fails the rehearsal there ("the live run would fail here:", exit 1), and the
// rehearsal changes nothing. The app is a real Python HTTP server the process backend starts;
// systemd, supervisord, pm2 and Docker are stood in for by small scripts first in PATH that answer
// as those managers do for a service they do not know.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/unknown.h"
#include "os/procfs.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

const std::string kSupport = RUNBOOK_TEST_SUPPORT_DIR;
const std::string kWouldFail = "the live run would fail here: ";

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

const EffectEvent* event_of(const LuaRun& r, const std::string& name, size_t n = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && n-- == 0) return &e;
  return nullptr;
}

bool wait_gone(pid_t pid, int ms = 5000) {
  for (int i = 0; i < ms / 20; ++i) {
    if (!os::is_alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !os::is_alive(pid);
}

class Predict : public ::testing::Test {
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

  std::string code_of(const std::string& body) const {
    return "runbook { name = 'predict', version = '1.0.0', params = { dir = { type = 'path' }, "
           "support = { type = 'path' }, port = { type = 'string' } } }\n"
           "step('s', function(p)\n" + body + "\nend)\n";
  }
  LuaRun run(const std::string& body, Mode mode = Mode::Live) {
    std::string rd = dir_ / ("run" + std::to_string(++runs_));
    stdfs::create_directories(rd);
    return run_lua(rd, code_of(body), mode, {{"dir", dir_.path()}, {"support", kSupport}, {"port", std::to_string(port_)}});
  }
  std::string url(const std::string& path = "/health") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Starts the web service live; returns its pid.
  pid_t start_web() {
    auto r = run(web_ + "service.start('web')");
    EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
    const EffectEvent* e = event_of(r, "service.start");
    return e && e->result.contains("pid") && e->result["pid"].is_number() ? e->result["pid"].get<pid_t>() : 0;
  }
  // A script named `name` first in PATH for the rest of the test.
  void fake(const std::string& name, const std::string& script) {
    std::string bin = dir_ / "bin";
    stdfs::create_directories(bin);
    write_file(bin + "/" + name, "#!/bin/sh\n" + script);
    ::chmod((bin + "/" + name).c_str(), 0755);
    if (!faked_) ::setenv("PATH", (bin + ":" + old_path_).c_str(), 1);
    faked_ = true;
  }
  ~Predict() override { ::setenv("PATH", old_path_.c_str(), 1); }

  TempDir dir_;
  std::string state_;
  int port_ = free_port();
  int runs_ = 0;
  std::string old_path_ = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  bool faked_ = false;
  const std::string web_ = R"lua(
    service.define{ name = "web", argv = { "python3", p.support .. "/http_server.py", p.port, p.dir .. "/srv" },
                    cwd = p.dir, log = "web.log", health = "http://127.0.0.1:" .. p.port .. "/health" }
  )lua";
};

}  // namespace

TEST_F(Predict, StatusAfterAPlannedStopIsStopped_AWrongExpectationFails_TheSameRunbookPassesLive) {
  pid_t pid = start_web();
  ASSERT_GT(pid, 0);
  std::string pidfile = read_file(state_ + "/web.pid");
  std::string record = read_file(state_ + "/web.pid.runbook");
  std::string before = sha256_tree(state_);
  const std::string verify = web_ + R"lua(
    service.stop("web")
    local s = service.status("web")
    assert(s.state == "stopped", "web is " .. tostring(s.state))
    assert(s.pid == nil, "pid " .. tostring(s.pid))
  )lua";

  auto dry = run(verify, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  const EffectEvent* stop = event_of(dry, "service.stop");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, "planned");
  // The basis is the state the stop acts on, nothing that changes by itself (no pid, no time).
  EXPECT_EQ(stop->preview["basis"], json({{"state", "running"}})) << stop->preview.dump();
  const EffectEvent* st = event_of(dry, "service.status");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->status, "predicted");
  // Shaped as the live answer after a stop: the process backend's pidfile is gone then.
  EXPECT_EQ(st->result, json({{"name", "web"}, {"backend", "process"}, {"state", "stopped"}, {"pid", nullptr},
                              {"detail", "no pidfile " + state_ + "/web.pid"}}))
      << st->result.dump();

  // A verification that contradicts the prediction fails the rehearsal.
  auto wrong = run(web_ + R"lua(
    service.stop("web")
    assert(service.status("web").state == "running", "web is not running")
  )lua", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);
  EXPECT_NE(err_of(wrong).find("web is not running"), std::string::npos) << err_of(wrong);

  // Neither rehearsal touched the service: same process, same pidfile, same state dir.
  ASSERT_TRUE(os::is_alive(pid));
  EXPECT_EQ(read_file(state_ + "/web.pid"), pidfile);
  EXPECT_EQ(read_file(state_ + "/web.pid.runbook"), record);
  EXPECT_EQ(sha256_tree(state_), before);
  EXPECT_TRUE(wait_for_port(port_, 1000));

  // The same runbook live: stopped for real, and the status says so.
  auto live = run(verify);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(event_of(live, "service.status")->status, "ok");
  EXPECT_TRUE(wait_gone(pid, 2000));
  // Live and predicted answers have the same fields and values.
  EXPECT_EQ(event_of(live, "service.status")->result, st->result);
}

TEST_F(Predict, AfterAPlannedRestart_StatusIsRunningWithAnUnknownPid_HttpAndProcAnswersAreUnknown) {
  pid_t pid = start_web();
  ASSERT_GT(pid, 0);
  write_file(dir_ / "srv/status", "503");  // the world before the restart answers 503
  const std::string body = web_ + R"lua(
    local before = http.get{ url = p.url, expect = { 200, 503 } }
    assert(#proc.find{ argv_match = "http_server%.py", cwd = p.dir } == 1)
    service.restart("web")
    local s = service.status("web")
    assert(s.state == "running", "web is " .. tostring(s.state))
    local after = http.get{ url = p.url, expect = { 200, 503 } }
    if after.status == before.status then log.info("THE SAME ANSWER AS BEFORE THE RESTART") end
    http.check(p.url)
    http.request{ method = "GET", url = p.url }
    http.head(p.url)
    proc.find{ argv_match = "http_server%.py" }
    http.post{ url = "http://127.0.0.1:" .. p.port .. "/api/x", json = { a = 1 } }
  )lua";
  // Through the CLI, as an operator sees it in --json and in the journal.
  std::string rb = dir_ / "restart.lua";
  write_file(rb, "runbook { name = 'predict', version = '1.0.0', params = { dir = { type = 'path' }, "
                 "support = { type = 'path' }, port = { type = 'string' }, url = { type = 'string' } } }\n"
                 "step('s', function(p)\n" + body + "\nend)\n");
  std::map<std::string, std::string> env = {{"RUNBOOK_STATE_DIR", state_}, {"RUNBOOK_JOURNAL", dir_ / "journal.db"}};
  std::vector<std::string> args = {"exec", rb, "-p", "dir=" + dir_.path(), "-p", "support=" + kSupport, "-p",
                                   "port=" + std::to_string(port_), "-p", "url=" + url(), "--json"};
  std::vector<std::string> dry_args = args;
  dry_args.push_back("--dry-run");
  auto r = run_cli(dry_args, env);
  std::vector<json> effects;
  for (const auto& e : r.events())
    if (e.value("type", "") == "effect") effects.push_back(e);
  auto nth = [&](const std::string& name, int n = 0) -> json {
    for (const auto& e : effects)
      if (e["name"] == name && n-- == 0) return e;
    return json::object();
  };
  EXPECT_EQ(r.out.find("THE SAME ANSWER AS BEFORE"), std::string::npos) << r.out;
  // Before the planned restart: the world, live.
  EXPECT_EQ(nth("http.get")["status"], "ok") << r.out << r.err;
  EXPECT_EQ(nth("http.get")["result"]["status"], 503);
  EXPECT_EQ(nth("proc.find")["status"], "ok");
  EXPECT_EQ(nth("proc.find")["result"].size(), 1u);
  // The restart's preview acts on the running service; the status predicts running, pid unknown.
  EXPECT_EQ(nth("service.restart")["status"], "planned");
  EXPECT_EQ(nth("service.restart")["preview"]["basis"], json({{"state", "running"}}));
  json st = nth("service.status");
  EXPECT_EQ(st["status"], "predicted") << st.dump();
  EXPECT_EQ(st["result"]["state"], "running");
  EXPECT_EQ(unknown_why(st["result"]["pid"]), "service.status web after service.restart web") << st.dump();
  EXPECT_TRUE(is_unknown(st["result"]["since"])) << st.dump();
  // After it: whole answers unknown, saying why.
  const std::string after = " after service.restart web";
  json get = nth("http.get", 1);
  EXPECT_EQ(get["status"], "predicted") << get.dump();
  EXPECT_EQ(unknown_why(get["result"]), "http.get " + url() + after) << get.dump();
  EXPECT_EQ(unknown_why(nth("http.check")["result"]), "http.check " + url() + after);
  EXPECT_EQ(unknown_why(nth("http.request")["result"]), "http.request GET " + url() + after);
  EXPECT_EQ(unknown_why(nth("http.head")["result"]), "http.head " + url() + after);
  EXPECT_EQ(unknown_why(nth("proc.find", 1)["result"]), "proc.find processes with argv_match=http_server%.py" + after);
  // An HTTP change is planned as before.
  EXPECT_EQ(nth("http.post")["status"], "planned");
  EXPECT_FALSE(contains_unknown(nth("http.post")["result"]));
  // The journal keeps the unknown, not the old answer.
  auto show = run_cli({"show", "last", "--json"}, env);
  json shown = json::parse(show.out, nullptr, false);
  json journaled;
  if (shown.is_object() && shown.contains("effects"))
    for (const auto& e : shown["effects"])
      if (e.value("name", "") == "http.get" && e.value("seq", 0) == get.value("seq", -1)) journaled = e;
  EXPECT_EQ(journaled.value("state", ""), "predicted") << show.out;
  EXPECT_EQ(unknown_why(journaled["result"]), "http.get " + url() + after) << show.out;
  // Nothing was restarted.
  EXPECT_TRUE(os::is_alive(pid));
  EXPECT_EQ(read_file(state_ + "/web.pid"), std::to_string(pid) + "\n");

  // The same runbook live (a healthy app, so the restart's health wait passes) restarts it.
  ::unlink((dir_ / "srv/status").c_str());
  auto live = run_cli(args, env);
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  EXPECT_TRUE(wait_gone(pid, 2000));
  pid_t now = std::stoi(read_file(state_ + "/web.pid"));
  EXPECT_NE(now, pid);
  EXPECT_TRUE(os::is_alive(now));
}

TEST_F(Predict, WithoutAPlannedChangeProbesAreLive) {
  pid_t pid = start_web();
  ASSERT_GT(pid, 0);
  auto ok = run(web_ + R"lua(
    service.define{ name = "web2", argv = { "no-such-program-xyz" }, cwd = p.dir .. "/missing" }
    service.start("web")
    service.stop("web2")
    local s = service.status("web")
    assert(s.state == "running" and type(s.pid) == "number", json.encode(s))
    local g = http.get("http://127.0.0.1:" .. p.port .. "/health")
    assert(g.status == 200, "status " .. tostring(g.status))
    assert(#proc.find{ argv_match = "http_server%.py", cwd = p.dir } == 1)
  )lua", Mode::DryRun);
  ASSERT_EQ(ok.result.exit_code, 0) << err_of(ok);
  EXPECT_EQ(event_of(ok, "service.start")->preview["changed"], false);
  // A stop of a stopped service whose program and directory are missing is accepted live, so
  // the rehearsal accepts it too.
  EXPECT_EQ(event_of(ok, "service.stop")->status, "planned");
  EXPECT_EQ(event_of(ok, "service.status")->status, "ok");
  EXPECT_EQ(event_of(ok, "service.status")->result["pid"], pid);
  EXPECT_EQ(event_of(ok, "http.get")->status, "ok");
  EXPECT_EQ(event_of(ok, "proc.find")->status, "ok");
}

// Each change the live run would refuse or fail ends the rehearsal there, exit 1.
TEST_F(Predict, ChangesTheLiveRunWouldRefuseFailTheDryRunThere) {
  struct Case {
    std::string label, body, message;
  };
  const std::vector<Case> cases = {
      {"a service nobody defined", "service.stop('nope')", "no service 'nope' is defined in this run"},
      {"a missing working directory",
       "service.define{ name = 'm', argv = { 'sleep', '30' }, cwd = p.dir .. '/gone' }\nservice.start('m')",
       "m: working directory " + dir_ / "gone" + " does not exist"},
      {"a program that is not on PATH",
       "service.define{ name = 'm', argv = { 'no-such-program-xyz' } }\nservice.start('m')",
       "m: 'no-such-program-xyz' not found on PATH"},
      {"a restart that would not start again",
       "service.define{ name = 'm', argv = { 'no-such-program-xyz' } }\nservice.restart('m')",
       "m: 'no-such-program-xyz' not found on PATH"},
      {"a log directory under a file",
       "service.define{ name = 'm', argv = { 'sleep', '30' }, log = p.dir .. '/afile/sub/m.log' }\nservice.start('m')",
       "m: cannot create " + dir_ / "afile/sub" + ": " + dir_ / "afile" + " is not a directory"},
      {"exec of a program that is not on PATH", "exec{ 'no-such-program-xyz', '--now' }",
       "'no-such-program-xyz' not found on PATH"},
      {"exec in a missing directory", "exec{ 'true', cwd = p.dir .. '/gone' }",
       "cannot enter directory " + dir_ / "gone" + ": No such file or directory"},
      {"a signal to more processes than max", "proc.signal{ argv_match = 'sleep 3017', max = 1 }",
       "2 processes match, more than max = 1; nothing would be signalled"},
      {"a manager that is not installed",
       "service.define{ name = 'u', backend = 'systemd', unit = 'u.service' }\nservice.stop('u')",
       "'systemctl' not found on PATH"},
  };
  write_file(dir_ / "afile", "x");
  Child s1({"sleep", "3017"}), s2({"sleep", "3017"});
  std::string path = std::getenv("PATH");
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    // systemctl absent for certain: PATH without it (the fake bin dir is empty).
    bool no_systemctl = c.body.find("systemd") != std::string::npos;
    if (no_systemctl) {
      stdfs::create_directories(dir_ / "emptybin");
      ::setenv("PATH", (dir_ / "emptybin").c_str(), 1);
    }
    auto r = run("service.define{ name = 'a', argv = { 'true' } }\n" + c.body +
                     "\nlog.info('AFTER THE FAILING CHANGE')",
                 Mode::DryRun);
    if (no_systemctl) ::setenv("PATH", path.c_str(), 1);
    EXPECT_EQ(r.result.exit_code, 1);
    EXPECT_NE(err_of(r).find(kWouldFail + c.message), std::string::npos) << err_of(r);
    EXPECT_FALSE(r.events.logged("AFTER THE FAILING CHANGE"));
  }
  EXPECT_TRUE(os::is_alive(s1.pid()) && os::is_alive(s2.pid()));
  // With check = false the call gets the failure as its result, as it would live.
  auto handled = run(R"lua(
    local r = proc.signal{ argv_match = "sleep 3017", max = 1, check = false }
    assert(r.ok == false and r.error:find("the live run would fail here", 1, true), json.encode(r))
  )lua", Mode::DryRun);
  EXPECT_EQ(handled.result.exit_code, 0) << err_of(handled);
  // Live, each fails the same way (the preview's words are apply's).
  auto live = run("service.define{ name = 'm', argv = { 'sleep', '30' }, cwd = p.dir .. '/gone' }\nservice.start('m')");
  EXPECT_EQ(live.result.exit_code, 1);
  EXPECT_NE(err_of(live).find("service.start: m: working directory " + dir_ / "gone" + " does not exist"),
            std::string::npos) << err_of(live);
}

// What apply may accept is not refused: an earlier planned change may create the directory or
// the program; a stale pidfile does not stop a start.
TEST_F(Predict, WhatAnEarlierPlannedChangeMayCreateIsNotRefused) {
  auto r = run(R"lua(
    exec{ "mkdir", "-p", p.dir .. "/later" }
    service.define{ name = "m", argv = { "sleep", "30" }, cwd = p.dir .. "/later" }
    service.start("m")
    exec{ "true", cwd = p.dir .. "/later" }
  )lua", Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_FALSE(stdfs::exists(dir_ / "later"));
  // exec changes have no basis and taint HTTP answers like a restart.
  EXPECT_TRUE(event_of(r, "exec")->preview.is_null());
  write_file(state_ + "/stale.pid", "1234\n");
  auto stale = run(R"lua(
    service.define{ name = "stale", argv = { "sleep", "30" }, cwd = p.dir }
    service.stop("stale")
    service.start("stale")
    assert(service.status("stale").state == "running")
  )lua", Mode::DryRun);
  EXPECT_EQ(stale.result.exit_code, 0) << err_of(stale);
  auto after_exec = run(R"lua(
    exec{ "true" }
    local g = http.get("http://127.0.0.1:" .. p.port .. "/health")
  )lua", Mode::DryRun);
  EXPECT_EQ(after_exec.result.exit_code, 0) << err_of(after_exec);
  EXPECT_EQ(event_of(after_exec, "http.get")->status, "predicted");
  EXPECT_EQ(unknown_why(event_of(after_exec, "http.get")->result),
            "http.get http://127.0.0.1:" + std::to_string(port_) + "/health after exec true");
}

// The managers that do not run here, stood in for by scripts that answer as they do for a
// service they do not know.
TEST_F(Predict, ManagersThatDoNotKnowTheServiceFailTheDryRun_NoManagersHere) {
  fake("systemctl",
       "case \"$1\" in\n"
       "  is-active) echo inactive; exit 3 ;;\n"
       "  show) case \"$*\" in *LoadState*) case \"$*\" in *known.service*) echo loaded ;; *) echo not-found ;; esac ;;"
       " *) echo 0 ;; esac ;;\n"
       "  *) echo \"Failed to $1 $2: Unit $2 not found.\" >&2; exit 5 ;;\n"
       "esac\n");
  fake("supervisorctl", "eval last=\\${$#}\necho \"$last: ERROR (no such process)\"\nexit 4\n");
  fake("pm2", "case \"$1\" in jlist) echo '[]' ;; *) echo \"[PM2][ERROR] Process or Namespace $2 not found\"; exit 1 ;; esac\n");
  fake("docker", "echo 'no such service: x' >&2\nexit 1\n");
  write_file(dir_ / "compose.yml", "services: {}\n");
  struct Case {
    std::string label, body, message;
  };
  const std::vector<Case> cases = {
      {"systemd: no such unit", "service.define{ name = 'x', backend = 'systemd', unit = 'x.service' }\nservice.start('x')",
       "systemctl start x.service: no such unit"},
      {"supervisor: no such program", "service.define{ name = 'x', backend = 'supervisor' }\nservice.stop('x')",
       "supervisorctl status x: supervisord has no program x"},
      {"pm2: a restart of an app it does not know", "service.define{ name = 'x', backend = 'pm2' }\nservice.restart('x')",
       "pm2 has no app named x: pm2 restart x would fail"},
      {"pm2: nothing to start it from", "service.define{ name = 'x', backend = 'pm2' }\nservice.start('x')",
       "pm2 has no app named x; give service.define an argv or a config"},
      {"compose: no such service",
       "service.define{ name = 'x', backend = 'compose', compose_command = 'docker compose', config = p.dir .. '/compose.yml' }\nservice.start('x')",
       "no such service: x"},
      {"compose: no compose file",
       "service.define{ name = 'x', backend = 'compose', config = p.dir .. '/gone.yml' }\nservice.start('x')",
       "the compose file " + dir_ / "gone.yml" + " does not exist"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto r = run(c.body, Mode::DryRun);
    EXPECT_EQ(r.result.exit_code, 1);
    EXPECT_NE(err_of(r).find(kWouldFail), std::string::npos) << err_of(r);
    EXPECT_NE(err_of(r).find(c.message), std::string::npos) << err_of(r);
  }
  // Accepted live, accepted in the rehearsal: a stop of a unit systemd does not know (it is
  // inactive, nothing to do), a start of one it knows; pm2 starting an unknown app from argv.
  auto ok = run(R"lua(
    service.define{ name = "x", backend = "systemd", unit = "x.service" }
    service.stop("x")
    service.define{ name = "k", backend = "systemd", unit = "known.service" }
    service.start("k")
    local s = service.status("k")
    assert(s.state == "running" and s.detail == "active", json.encode(s))
    service.define{ name = "n", backend = "pm2", argv = { "sleep", "30" } }
    service.start("n")
    service.restart("n")
  )lua", Mode::DryRun);
  EXPECT_EQ(ok.result.exit_code, 0) << err_of(ok);
}
