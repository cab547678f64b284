// Effect timeouts against servers that misbehave (tests/support/hostile_server.py on 127.0.0.1):
// ones that accept and never answer, that complete PostgreSQL's startup and then go silent (and
// hold a cancel), that trickle a byte a second. Each pg, redis and http call must end within its
// timeout plus a second, naming the call; the step's deadline bounds a longer timeout; the first
// Ctrl-C stops a real `runbook exec` blocked in one (exit 130). And HTTP bodies are capped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/support.h"

using namespace rb;
using namespace rb::test;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class Hostile {
 public:
  explicit Hostile(const std::string& mode, uint64_t size = 0)
      : port_(free_port()),
        child_({"python3", std::string(RUNBOOK_TEST_SUPPORT_DIR) + "/hostile_server.py", mode,
                std::to_string(port_), dir_ / "events.log", std::to_string(size)},
               {}, dir_ / "server.err") {
    if (!wait_for_port(port_, 10000))
      throw std::runtime_error("hostile_server.py " + mode +
                               " did not start (python3 missing? apt-get install python3): " +
                               read_file(dir_ / "server.err"));
    // wait_for_port's own probe is an "accept" too: events start clean after it.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    write_file(dir_ / "events.log", "");
  }
  int port() const { return port_; }
  std::string events() const { return read_file(dir_ / "events.log"); }
  bool saw(const std::string& event) const { return events().find(event) != std::string::npos; }
  bool wait_for(const std::string& event, int timeout_ms = 10000) const {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < until) {
      if (saw(event)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string pg() const { return "postgresql://app:pw-hostile@127.0.0.1:" + std::to_string(port_) + "/app"; }
  std::string redis() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  std::string http(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  TempDir dir_;
  int port_;
  Child child_;
};

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

class Timeouts : public ::testing::Test {
 protected:
  // One step; `step_timeout` empty for the default (30 minutes).
  LuaRun run(const std::string& body, const std::string& step_timeout = "") {
    std::string code = "runbook { name = 'hostile', version = '1.0.0' }\n";
    if (step_timeout.empty())
      code += "step('s', function()\n" + body + "\nend)\n";
    else
      code += "step{ 's', timeout = '" + step_timeout + "', run = function()\n" + body + "\nend }\n";
    return run_lua(dir_.path(), code);
  }
  // The call fails between `min_s` and `max_s` seconds, with an error holding every `needles`.
  void fails_in_time(const std::string& body, double min_s, double max_s,
                     const std::vector<std::string>& needles, const std::string& step_timeout = "") {
    auto t0 = Clock::now();
    auto r = run(body, step_timeout);
    double took = seconds_since(t0);
    EXPECT_GE(took, min_s) << body;
    EXPECT_LT(took, max_s) << body << "\n" << err_of(r);
    ASSERT_EQ(r.events.step_outcomes.size(), 1u) << body;
    EXPECT_EQ(r.events.step_outcomes[0], "1:failed") << body;
    for (const auto& n : needles) EXPECT_NE(err_of(r).find(n), std::string::npos) << n << " in\n" << err_of(r);
  }
  TempDir dir_;
};

// ---- PostgreSQL ----------------------------------------------------------------------------

TEST_F(Timeouts, PgQueryEndsWithinItsTimeoutWhateverTheServerDoes) {
  for (std::string mode : {"blackhole", "pg-trickle-startup", "pg-silent", "pg-trickle"}) {
    SCOPED_TRACE(mode);
    Hostile s(mode);
    fails_in_time("pg.query{ dsn = '" + s.pg() + "', sql = 'SELECT 1', timeout = '1500ms' }", 1.3, 2.5,
                  {"pg.query: ", "1.5s"});
    // The statement was sent before it was given up on: it is the query that timed out.
    if (mode == "pg-silent" || mode == "pg-trickle") {
      EXPECT_TRUE(s.saw("query")) << s.events();
    }
  }
}

TEST_F(Timeouts, PgPingIsFalseWithinItsTimeoutAndSaysWhy) {
  for (std::string mode : {"blackhole", "pg-trickle-startup", "pg-silent", "pg-trickle"}) {
    SCOPED_TRACE(mode);
    Hostile s(mode);
    auto t0 = Clock::now();
    auto r = run("assert(pg.ping{ dsn = '" + s.pg() + "', timeout = '1500ms' } == false)");
    double took = seconds_since(t0);
    EXPECT_GE(took, 1.3);
    EXPECT_LT(took, 2.5);
    EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
    EXPECT_TRUE(r.events.logged("1.5s")) << mode;
  }
}

TEST_F(Timeouts, PgCancelThatTheServerHoldsDoesNotHoldTheCall) {
  Hostile s("pg-silent");
  fails_in_time("pg.query{ dsn = '" + s.pg() + "', sql = 'SELECT 1', timeout = '1s' }", 0.9, 2.0,
                {"pg.query: timed out after 1.0s; the statement was cancelled"});
  // The cancel was sent (and the server never closed it: PQcancel alone would wait for ever).
  EXPECT_TRUE(s.wait_for("cancel", 2000)) << s.events();
}

TEST_F(Timeouts, PgDumpAgainstASilentServerIsStoppedAtItsTimeout) {
  Hostile s("pg-silent");
  fails_in_time("pg.dump{ dsn = '" + s.pg() + "', file = '" + (dir_ / "d.dump") + "', timeout = '1500ms' }",
                1.3, 2.5 + 2.0 /* the spawned pg_dump's TERM grace */, {"pg.dump: ", "timed out after 1.5s"});
  EXPECT_TRUE(s.saw("startup")) << s.events();
}

TEST_F(Timeouts, PgStepDeadlineBoundsALongerTimeout) {
  Hostile s("pg-silent");
  fails_in_time("pg.query{ dsn = '" + s.pg() + "', sql = 'SELECT 1', timeout = '60s' }", 0.9, 2.2,
                {"pg.query"}, "1s");
}

// ---- Redis ---------------------------------------------------------------------------------

TEST_F(Timeouts, RedisGetEndsWithinItsTimeoutAgainstSilenceAndTrickle) {
  for (std::string mode : {"blackhole", "redis-trickle"}) {
    SCOPED_TRACE(mode);
    Hostile s(mode);
    fails_in_time("redis.get{ url = '" + s.redis() + "', key = 'k', timeout = '1500ms' }", 1.3, 2.5,
                  {"redis.get: ", "GET failed: no whole answer within 1.5s"});
  }
}

TEST_F(Timeouts, RedisPingIsFalseWithinItsTimeoutAgainstATrickle) {
  Hostile s("redis-trickle");
  auto t0 = Clock::now();
  auto r = run("assert(redis.ping{ url = '" + s.redis() + "', timeout = '2s' } == false)");
  double took = seconds_since(t0);
  EXPECT_GE(took, 1.8);
  EXPECT_LT(took, 3.0);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(r.events.logged("no whole answer within 2.0s"));
  EXPECT_TRUE(s.saw("command"));  // the trickle had begun: it is the answer that was too slow
}

TEST_F(Timeouts, RedisStepDeadlineBoundsALongerTimeout) {
  Hostile s("redis-trickle");
  fails_in_time("redis.get{ url = '" + s.redis() + "', key = 'k', timeout = '60s' }", 0.9, 2.2,
                {"redis.get"}, "1s");
}

// ---- HTTP ----------------------------------------------------------------------------------

TEST_F(Timeouts, HttpGetEndsWithinItsTimeoutAgainstSilenceAndTrickle) {
  for (std::string mode : {"blackhole", "http-trickle"}) {
    SCOPED_TRACE(mode);
    Hostile s(mode);
    fails_in_time("http.get{ url = '" + s.http() + "', timeout = '1500ms' }", 1.3, 2.5,
                  {"http.get: GET " + s.http(), "Timeout"});
  }
}

TEST_F(Timeouts, HttpWaitHealthyAndStepDeadlineHoldAgainstATrickle) {
  Hostile s("http-trickle");
  fails_in_time("http.wait_healthy{ url = '" + s.http() + "', timeout = '2s' }", 1.8, 3.0,
                {"http.wait_healthy: ", "not healthy after"});
  fails_in_time("http.get{ url = '" + s.http() + "', timeout = '60s' }", 0.9, 2.2, {"http.get"}, "1s");
}

// ---- HTTP bodies ---------------------------------------------------------------------------

TEST_F(Timeouts, HttpBodyOverTheCapFailsAtOnceNamingTheCap) {
  Hostile announced("http-big-length", 40u << 20);
  fails_in_time("http.get{ url = '" + announced.http() + "' }", 0, 2.0,
                {"http.get: the answer is larger than max_body 16 MiB (GET " + announced.http() + ")"});
  // Refused on the announced length: the body itself was never read.
  EXPECT_FALSE(announced.saw("sent all"));

  Hostile streamed("http-big-stream", 40u << 20);
  fails_in_time("http.get{ url = '" + streamed.http() + "', max_body = '1MiB' }", 0, 2.0,
                {"http.get: the answer is larger than max_body 1 MiB"});
  fails_in_time("http.wait_healthy{ url = '" + streamed.http() + "', max_body = 65536, timeout = '30s' }", 0,
                2.0, {"http.wait_healthy: the answer is larger than max_body 64 KiB"});
}

TEST_F(Timeouts, DryRunProbesAreCappedToo) {
  Hostile s("http-big-stream", 40u << 20);
  std::string code = "runbook { name = 'probe', version = '1.0.0' }\n"
                     "step('probe', function() http.get{ url = '" + s.http() + "', max_body = '2MiB' } end)\n"
                     "step('wait', function() http.wait_healthy{ url = '" + s.http() + "' } end)\n";
  auto t0 = Clock::now();
  auto r = run_lua(dir_.path(), code, Mode::DryRun);
  EXPECT_LT(seconds_since(t0), 3.0);
  // The probe runs in a dry-run, and fails as it would live.
  EXPECT_NE(err_of(r).find("http.get: the answer is larger than max_body 2 MiB"), std::string::npos) << err_of(r);
  r = run_lua(dir_.path(), "runbook { name = 'probe', version = '1.0.0' }\n"
                           "step('wait', function() http.wait_healthy{ url = '" + s.http() + "' } end)\n",
              Mode::DryRun);
  // wait_healthy's preview looks once and says what it saw.
  bool said = false;
  for (const auto& e : r.events.effects)
    said = said || e.preview.dump().find("larger than max_body 16 MiB") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST_F(Timeouts, HttpBodyUnderTheCapIsKeptWhole) {
  Hostile s("http-big-stream", 1000);
  auto r = run("local a = http.get{ url = '" + s.http() + "', max_body = 1000 }\n"
               "assert(#a.body == 1000, #a.body)\n"
               "local ok, err = pcall(http.get, { url = '" + s.http() + "', max_body = 999 })\n"
               "assert(not ok and tostring(err):find('larger than max_body 999 bytes', 1, true), tostring(err))\n"
               "assert(#http.get{ url = '" + s.http() + "', max_body = '64MiB' }.body == 1000)");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST_F(Timeouts, MaxBodyThatIsNotASizeIsAnArgumentError) {
  for (std::string bad : {"'lots'", "'12 parsecs'", "0", "-5", "true", "'1e30GiB'"}) {
    auto r = run("http.get{ url = 'http://127.0.0.1:1/', max_body = " + bad + " }");
    EXPECT_NE(err_of(r).find("bad argument 'max_body' to 'http.get' (a size like \"64MiB\""), std::string::npos)
        << bad << ": " << err_of(r);
  }
}

TEST_F(Timeouts, ApiDocumentsMaxBody) {
  auto r = run_cli({"api"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (std::string effect : {"http.get(url)", "http.request{ ... }", "http.check(url)", "http.wait_healthy(url)"}) {
    auto at = r.out.find(effect);
    ASSERT_NE(at, std::string::npos) << effect;
    auto end = r.out.find("\n\n", at);
    EXPECT_NE(r.out.substr(at, end - at).find("max_body : any = \"16MiB\""), std::string::npos) << effect;
  }
}

// ---- a real runbook process ----------------------------------------------------------------

struct Proc {
  pid_t pid = -1;
  int code = -1;
  long max_rss_kib = 0;
};

Proc spawn_runbook(const TempDir& dir, const std::string& code, const std::vector<std::string>& extra = {}) {
  write_file(dir / "rb.lua", code);
  Proc p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (dir / "journal.db").c_str(), 1);
    ::setenv("NO_COLOR", "1", 1);
    int fd = ::open((dir / "out.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<std::string> args{RUNBOOK_BIN, "exec", dir / "rb.lua"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(RUNBOOK_BIN, argv.data());
    ::_exit(127);
  }
  return p;
}

// Waits up to `timeout_s` (then kills it); its exit code, or -1 if it had to be killed.
void wait_proc(Proc& p, double timeout_s) {
  auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  int status = 0;
  rusage ru{};
  for (;;) {
    pid_t w = ::wait4(p.pid, &status, WNOHANG, &ru);
    if (w == p.pid) break;
    if (Clock::now() > until) {
      ::kill(p.pid, SIGKILL);
      ::wait4(p.pid, &status, 0, &ru);
      p.code = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  p.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  p.max_rss_kib = ru.ru_maxrss;
}

TEST_F(Timeouts, FirstCtrlCStopsARunBlockedInEachEffect) {
  struct Case {
    std::string mode, call, event;
  };
  Hostile pg("pg-silent"), mute("blackhole"), redis("redis-trickle"), http("http-trickle");
  std::vector<Case> cases = {
      {"pg-silent", "pg.query{ dsn = '" + pg.pg() + "', sql = 'SELECT 1', timeout = '60s' }", "query"},
      {"blackhole (pg connecting)", "pg.query{ dsn = '" + mute.pg() + "', sql = 'SELECT 1', timeout = '60s' }",
       "accept"},
      {"redis-trickle", "redis.get{ url = '" + redis.redis() + "', key = 'k', timeout = '60s' }", "command"},
      {"http-trickle", "http.get{ url = '" + http.http() + "', timeout = '60s' }", "request"}};
  const Hostile* servers[] = {&pg, &mute, &redis, &http};
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].mode);
    TempDir d;
    Proc p = spawn_runbook(d, "runbook { name = 'blocked', version = '1.0.0' }\n"
                              "step('blocked', function() " + cases[i].call + " end)\n"
                              "step('never', function() log.info('never reached') end)\n");
    // Blocked where it should be: the server has the request (plus a moment to be inside the wait).
    ASSERT_TRUE(servers[i]->wait_for(cases[i].event)) << servers[i]->events() << read_file(d / "out.txt");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto t0 = Clock::now();
    ::kill(p.pid, SIGINT);
    wait_proc(p, 10);
    EXPECT_LT(seconds_since(t0), 1.5);
    EXPECT_EQ(p.code, 130) << read_file(d / "out.txt");
    EXPECT_EQ(read_file(d / "out.txt").find("never reached"), std::string::npos);
  }
}

TEST_F(Timeouts, HugeHttpBodyNeverGrowsTheRunnerPastTheCap) {
  // 256 MiB without a length: read as it streams, stopped at the cap (16 MiB by default).
  Hostile s("http-big-stream", 256u << 20);
  TempDir d;
  Proc p = spawn_runbook(d, "runbook { name = 'big', version = '1.0.0' }\n"
                            "step('get', function() http.get{ url = '" + s.http() + "' } end)\n");
  wait_proc(p, 30);
  EXPECT_EQ(p.code, 1) << read_file(d / "out.txt");
  EXPECT_NE(read_file(d / "out.txt").find("the answer is larger than max_body 16 MiB"), std::string::npos)
      << read_file(d / "out.txt");
  // The runner alone is some 10-20 MiB; a body kept whole would be 256 MiB several times over.
  // ASan's shadow memory and quarantine roughly double that: the bound stays far below 256 MiB.
#ifdef RUNBOOK_SANITIZED
  const long bound_kib = 200 * 1024;
#else
  const long bound_kib = 96 * 1024;
#endif
  EXPECT_LT(p.max_rss_kib, bound_kib) << p.max_rss_kib << " KiB";
}

}  // namespace
