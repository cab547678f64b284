// One live run per target, tried with real processes of the real binary on one journal: the
// second and the twentieth live run of the same runbook against the same target are refused
// (exit 4, naming the holder) before they change anything; other targets run beside it; a killed
// holder's lock is taken over; --wait-lock waits; dry-runs take no lock; a resume takes the
// original's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>

#include "journal/journal.h"
#include "journal/locks.h"
#include "lua/runbook.h"
#include "os/procfs.h"
#include "support/support.h"

namespace rb::test {
namespace {

using namespace std::chrono_literals;

// A runbook process started in the background, its output in files.
class Bg {
 public:
  Bg(const std::vector<std::string>& args, const std::string& dir, int n) {
    out_ = dir + "/p" + std::to_string(n) + ".out";
    err_ = dir + "/p" + std::to_string(n) + ".err";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::setenv("NO_COLOR", "1", 1);
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> a{const_cast<char*>(RUNBOOK_BIN)};
      for (const auto& s : args) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
  }
  ~Bg() {
    if (pid_ > 0 && code_ == kRunning) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The exit status (128 + signal), or kRunning if it has not ended within `limit`.
  int wait(std::chrono::milliseconds limit = 60s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (code_ == kRunning) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      if (std::chrono::steady_clock::now() > until) break;
      std::this_thread::sleep_for(10ms);
    }
    return code_;
  }
  bool ended() { return wait(0ms) != kRunning; }
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }
  static constexpr int kRunning = -1;

 private:
  pid_t pid_ = -1;
  int code_ = kRunning;
  std::string out_, err_;
};

// The runbook of most tests: writes who owns the target, holds it until the test creates
// <target>/release, then checks that it still owns it. Without the lock, two runs interleave
// and the check fails.
const char* kHolder = R"lua(
runbook{ name = "deploy", version = "1.0.0", lock = "app:{app}",
  params = { app = { type = "path", required = true }, note = { default = "" } } }
step("claim", function(p) fs.write(p.app .. "/owner", tostring(run.id)) end)
step("hold", function(p)
  exec{ "sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', p.app .. "/release",
        timeout = "90s" }
end)
step("check", function(p)
  if run.dry_run then return end  -- the claim was only planned
  local owner = fs.read(p.app .. "/owner")
  if owner ~= tostring(run.id) then error("the target was taken by run " .. owner) end
end)
)lua";

struct Fixture {
  TempDir d;
  std::string journal = d / "journal.db";
  std::string file = d / "rb.lua";
  explicit Fixture(const std::string& code = kHolder) { write_file(file, code); }
  std::string target(const std::string& name) {
    std::string t = d / name;
    std::filesystem::create_directories(t);
    return t;
  }
  std::vector<std::string> exec(const std::string& app, std::vector<std::string> more = {}) {
    std::vector<std::string> a{"exec", file, "--journal", journal, "-p", "app=" + app};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  std::vector<json> locks() {
    auto r = run_cli({"locks", "--journal", journal, "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<json> out;
    for (const auto& e : r.events()) out.push_back(e);
    return out;
  }
  // Waits until `n` locks are held (bounded).
  std::vector<json> wait_locks(size_t n, std::chrono::seconds limit = 60s) {
    auto until = std::chrono::steady_clock::now() + limit;
    std::vector<json> l;
    while (std::chrono::steady_clock::now() < until) {
      l = locks();
      if (l.size() == n) return l;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "expected " << n << " locks held, have " << l.size();
    return l;
  }
  std::vector<RunRecord> runs() {
    Journal j(journal);
    RunFilter f;
    f.limit = 0;
    f.oldest_first = true;
    return j.runs(f);
  }
};

const std::regex& refusal() {
  static const std::regex re(
      R"re(runbook: lock "([^"]+)" is held by run #(\d+) by (\S+)@(\S+) since \d\d:\d\d:\d\d, pid (\d+))re");
  return re;
}

// N live runs of one runbook against one target, all started at once: exactly one proceeds;
// every other exits 4 at once, naming it, having changed nothing; the target ends as the one
// run left it.
void race(int n) {
  Fixture f;
  std::string app = f.target("app");
  std::vector<std::unique_ptr<Bg>> procs;
  for (int i = 0; i < n; ++i) procs.push_back(std::make_unique<Bg>(f.exec(app), f.d.path(), i));
  // Every refused one ends while the holder still holds (it waits for the release file).
  auto until = std::chrono::steady_clock::now() + 90s;
  int ended = 0;
  while (std::chrono::steady_clock::now() < until && ended < n - 1) {
    ended = 0;
    for (auto& p : procs) ended += p->ended() ? 1 : 0;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(ended, n - 1) << "all but the holder should have been refused at once";
  auto held = f.locks();
  ASSERT_EQ(held.size(), 1u);
  write_file(app + "/release", "");
  Bg* winner = nullptr;
  for (auto& p : procs) {
    int code = p->wait(60s);
    if (code == kExitOk) {
      EXPECT_EQ(winner, nullptr) << "two runs proceeded";
      winner = p.get();
    } else {
      ASSERT_EQ(code, kExitRefused) << p->out() << p->err();
    }
  }
  ASSERT_NE(winner, nullptr) << "no run proceeded";
  EXPECT_EQ(held[0]["pid"], winner->pid());
  EXPECT_EQ(held[0]["key"], "app:" + app);

  auto runs = f.runs();
  ASSERT_EQ(runs.size(), static_cast<size_t>(n)) << "every run is journaled";
  int64_t winner_run = 0;
  int refused = 0;
  Journal j(f.journal);
  for (const auto& r : runs) {
    if (r.outcome == "succeeded") {
      EXPECT_EQ(r.pid, winner->pid());
      winner_run = r.id;
    } else {
      EXPECT_EQ(r.outcome, "refused");
      EXPECT_EQ(r.exit_code, kExitRefused);
      EXPECT_TRUE(j.effects(r.id).empty()) << "a refused run changed nothing";
      EXPECT_TRUE(j.steps(r.id).empty());
      ++refused;
    }
  }
  EXPECT_EQ(refused, n - 1);
  EXPECT_EQ(held[0]["run_id"], winner_run);
  EXPECT_EQ(read_file(app + "/owner"), std::to_string(winner_run));
  for (auto& p : procs) {
    if (p.get() == winner) continue;
    std::smatch m;
    std::string err = p->err();
    ASSERT_TRUE(std::regex_search(err, m, refusal())) << err;
    EXPECT_EQ(m[1].str(), "app:" + app);
    EXPECT_EQ(m[2].str(), std::to_string(winner_run));
    EXPECT_EQ(m[5].str(), std::to_string(winner->pid()));
  }
  EXPECT_TRUE(f.locks().empty()) << "released at the end";
  auto integrity = run_cli({"runs", "--journal", f.journal, "--limit", "0"});
  EXPECT_EQ(integrity.code, 0);
}

TEST(Locks, TwoLiveRunsOfOneTarget) { race(2); }

TEST(Locks, TwentyLiveRunsOfOneTarget) { race(20); }

TEST(Locks, DifferentTargetsRunSideBySide) {
  Fixture f;
  std::vector<std::unique_ptr<Bg>> procs;
  std::vector<std::string> apps;
  for (int i = 0; i < 5; ++i) {
    apps.push_back(f.target("app" + std::to_string(i)));
    procs.push_back(std::make_unique<Bg>(f.exec(apps.back()), f.d.path(), i));
  }
  auto held = f.wait_locks(5);  // all five hold their own target at the same time
  ASSERT_EQ(held.size(), 5u);
  for (const auto& a : apps) write_file(a + "/release", "");
  for (auto& p : procs) EXPECT_EQ(p->wait(), kExitOk) << p->out() << p->err();
}

TEST(Locks, TheRowNamesTheHolderProcess) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  auto held = f.wait_locks(1);
  ASSERT_EQ(held.size(), 1u);
  auto st = os::read_stat(holder.pid());
  ASSERT_TRUE(st);
  EXPECT_EQ(held[0]["start_ticks"], st->start_ticks);
  EXPECT_EQ(held[0]["pid"], holder.pid());
  EXPECT_EQ(held[0]["runbook"], "deploy");
  EXPECT_EQ(held[0]["state"], "held");
  EXPECT_FALSE(held[0]["user"].get<std::string>().empty());
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(held[0]["host"], host);
  EXPECT_LE(std::abs(held[0]["since_ms"].get<int64_t>() - now_epoch_ms()), 60000);
  auto text = run_cli({"locks", "--journal", f.journal});
  EXPECT_NE(text.out.find("app:" + app), std::string::npos) << text.out;
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
}

// A runbook that declares no lock: its name plus its `target = true` parameters.
const char* kTargets = R"lua(
runbook{ name = "roll", version = "1.0.0",
  params = { dir = { type = "path", target = true }, env = { target = true, default = "prod" },
             note = { default = "" } } }
step("hold", function(p)
  exec{ "sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', p.dir .. "/release",
        timeout = "90s" }
end)
)lua";

TEST(Locks, TargetParamsMakeTheKey) {
  Fixture f(kTargets);
  std::string a = f.target("a"), b = f.target("b");
  auto args = [&](const std::string& dir, std::vector<std::string> more) {
    std::vector<std::string> v{"exec", f.file, "--journal", f.journal, "-p", "dir=" + dir};
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  Bg holder(args(a, {}), f.d.path(), 0);
  auto held = f.wait_locks(1);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0]["key"], "roll:dir=" + a + ",env=prod");
  // A parameter that is not a target does not make another target; a trailing slash neither.
  auto same = run_cli(args(a + "/", {"-p", "note=other"}));
  EXPECT_EQ(same.code, kExitRefused) << same.out << same.err;
  EXPECT_NE(same.err.find("lock \"roll:dir=" + a + ",env=prod\" is held by run #"),
            std::string::npos)
      << same.err;
  // Another value of a target parameter is another target.
  Bg other_env(args(a, {"-p", "env=staging"}), f.d.path(), 1);
  Bg other_dir(args(b, {}), f.d.path(), 2);
  f.wait_locks(3);
  write_file(a + "/release", "");
  write_file(b + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
  EXPECT_EQ(other_env.wait(), kExitOk) << other_env.err();
  EXPECT_EQ(other_dir.wait(), kExitOk) << other_dir.err();
}

TEST(Locks, ADeclaredLockIsSharedAcrossRunbooks) {
  // Two runbooks acting on one app declare the same lock: they exclude each other.
  Fixture f;
  std::string other = f.d / "other.lua";
  write_file(other, R"lua(
runbook{ name = "restart", version = "1.0.0", lock = "app:{app}",
  params = { app = { type = "path" } } }
step("touch", function(p) fs.write(p.app .. "/owner", "restart") end)
)lua");
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  auto r = run_cli({"exec", other, "--journal", f.journal, "-p", "app=" + app});
  EXPECT_EQ(r.code, kExitRefused) << r.out << r.err;
  EXPECT_NE(r.err.find("lock \"app:" + app + "\" is held by run #1 by "), std::string::npos)
      << r.err;
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
  EXPECT_EQ(read_file(app + "/owner"), "1");
  // Without a lock or targets the key is the name: a different name runs beside it.
  EXPECT_EQ(run_cli({"exec", other, "--journal", f.journal, "-p", "app=" + app}).code, kExitOk);
}

TEST(Locks, KeysInProcess) {
  TempDir d;
  auto key = [&](const std::string& decl, const json& params) {
    write_file(d / "k.lua", decl + "\nstep('s', function() end)\n");
    Runbook book(builtin_registry());
    book.load(d / "k.lua");
    return lock_key(book.decl(), params);
  };
  EXPECT_EQ(key(R"(runbook{ name = "plain", version = "1.0.0" })", json::object()), "plain");
  EXPECT_EQ(key(R"(runbook{ name = "x", version = "1.0.0", lock = "db:{host}:{port}",
                  params = { host = {}, port = { type = "int" } } })",
                {{"host", "db1"}, {"port", 5432}}),
            "db:db1:5432");
  EXPECT_EQ(key(R"(runbook{ name = "x", version = "1.0.0", lock = "fleet",
                  params = { host = { target = true } } })",
                {{"host", "db1"}}),
            "fleet");
  EXPECT_EQ(key(R"(runbook{ name = "x", version = "1.0.0",
                  params = { hosts = { type = "list", target = true } } })",
                {{"hosts", {"a", "b"}}}),
            "x:hosts=a,b");
}

TEST(Locks, BadDeclarationsAreErrorsWithFileAndLine) {
  TempDir d;
  auto check = [&](const std::string& decl) {
    write_file(d / "bad.lua", "-- line 1\n" + decl + "\nstep('s', function() end)\n");
    return run_cli({"check", d / "bad.lua"});
  };
  auto r = check(R"(runbook{ name = "x", version = "1.0.0", lock = "app:{ap}",
                  params = { app = {} } })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("bad.lua:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lock: unknown parameter '{ap}' (declared: app)"), std::string::npos)
      << r.err;
  r = check(R"(runbook{ name = "x", version = "1.0.0", lock = "app:{app" , params = { app = {} } })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("has no closing '}'"), std::string::npos) << r.err;
  r = check(R"(runbook{ name = "x", version = "1.0.0", lock = 5 })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("lock must be a non-empty string"), std::string::npos) << r.err;
  r = check(R"(runbook{ name = "x", version = "1.0.0", lock = "" })");
  EXPECT_EQ(r.code, kExitUsage);
  r = check(R"(runbook{ name = "x", version = "1.0.0", params = { t = { target = "yes" } } })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("param 't': 'target' must be true or false"), std::string::npos) << r.err;
  r = check(R"(runbook{ name = "x", version = "1.0.0", params = { pw = { secret = true, target = true } } })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("a secret cannot be a target"), std::string::npos) << r.err;
  r = check(R"(runbook{ name = "x", version = "1.0.0", lock = "db:{pw}", params = { pw = { secret = true } } })");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("is secret"), std::string::npos) << r.err;
}

TEST(Locks, AKilledHoldersLockIsTakenOver) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  auto held = f.wait_locks(1);
  ASSERT_EQ(held.size(), 1u);
  int64_t dead_run = held[0]["run_id"];
  ASSERT_EQ(::kill(-holder.pid(), SIGKILL), 0);
  ASSERT_EQ(holder.wait(), 128 + SIGKILL);
  held = f.locks();
  ASSERT_EQ(held.size(), 1u) << "nothing released it";
  EXPECT_NE(held[0]["state"].get<std::string>().find("stale: pid "), std::string::npos)
      << held[0].dump();

  write_file(app + "/release", "");
  auto r = run_cli(f.exec(app));
  ASSERT_EQ(r.code, kExitOk) << r.out << r.err;
  std::string note = "lock \"app:" + app + "\" was held by run #" + std::to_string(dead_run);
  EXPECT_NE(r.out.find(note), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is no longer running on this host): taken over"), std::string::npos)
      << r.out;
  // And the journal says so.
  Journal j(f.journal);
  auto last = j.last_run_id();
  bool logged = false;
  for (const auto& l : j.logs(*last)) logged = logged || l.message.find(note) != std::string::npos;
  EXPECT_TRUE(logged);
  EXPECT_EQ(j.run(*last)->extra["lock_taken_over"]["run_id"], dead_run);
  EXPECT_TRUE(f.locks().empty());
}

TEST(Locks, AReusedPidIsNotTheHolder) {
  // A row whose pid is alive but started at another time (the pid was reused) is stale.
  Fixture f;
  std::string app = f.target("app");
  {
    Journal j(f.journal);
    RunRecord r;
    r.runbook = "deploy";
    r.version = "1.0.0";
    r.mode = "live";
    r.outcome = "running";
    r.started_ms = now_epoch_ms();
    j.begin_run(r);
    auto locks = open_run_locks(j, nullptr);
    LockHolder h;
    h.key = "app:" + app;
    h.run_id = r.id;
    h.runbook = "deploy";
    h.user = "someone";
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    h.host = host;
    h.pid = ::getpid();  // alive: this test
    h.start_ticks = os::read_stat(::getpid())->start_ticks + 1;
    h.since_ms = now_epoch_ms();
    ASSERT_TRUE(locks->acquire(h).acquired);
  }
  write_file(app + "/release", "");
  auto r = run_cli(f.exec(app));
  ASSERT_EQ(r.code, kExitOk) << r.out << r.err;
  EXPECT_NE(r.out.find("is another process now (its start time differs)): taken over"),
            std::string::npos)
      << r.out;
}

TEST(Locks, AnotherHostsLockIsNotTakenOver) {
  Fixture f;
  std::string app = f.target("app");
  {
    Journal j(f.journal);
    RunRecord r;
    r.runbook = "deploy";
    r.version = "1.0.0";
    r.mode = "live";
    r.outcome = "running";
    r.started_ms = now_epoch_ms();
    j.begin_run(r);
    auto locks = open_run_locks(j, nullptr);
    LockHolder h{"app:" + app, r.id, "deploy", "deploy", "db1", 4242, 7, now_epoch_ms()};
    ASSERT_TRUE(locks->acquire(h).acquired);
  }
  auto r = run_cli(f.exec(app));
  EXPECT_EQ(r.code, kExitRefused) << r.out << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("is held by run #1 by deploy@db1 since "
                                                  "\\d\\d:\\d\\d:\\d\\d, pid 4242")))
      << r.err;
  // --json: one event with the holder.
  r = run_cli(f.exec(app, {"--json"}));
  EXPECT_EQ(r.code, kExitRefused);
  auto ev = r.events();
  ASSERT_FALSE(ev.empty()) << r.out;
  EXPECT_EQ(ev.back()["type"], "refused");
  EXPECT_EQ(ev.back()["exit_code"], kExitRefused);
  EXPECT_EQ(ev.back()["holder"]["host"], "db1");
  EXPECT_EQ(ev.back()["holder"]["pid"], 4242);
}

TEST(Locks, WaitLockWaitsForTheHolder) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  // A wait that ends before the holder: the same refusal, after the wait.
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli(f.exec(app, {"--wait-lock", "1s"}));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.code, kExitRefused) << r.out << r.err;
  EXPECT_GE(took, 1s);
  EXPECT_TRUE(std::regex_search(r.err, refusal())) << r.err;
  EXPECT_NE(r.err.find("(waited 1.0s)"), std::string::npos) << r.err;

  Bg waiter(f.exec(app, {"--wait-lock", "5s"}), f.d.path(), 1);
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(waiter.ended()) << waiter.out() << waiter.err();
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
  EXPECT_EQ(waiter.wait(), kExitOk) << waiter.out() << waiter.err();
  EXPECT_NE(waiter.out().find("waiting up to 5.0s"), std::string::npos) << waiter.out();
  EXPECT_TRUE(f.locks().empty());
}

TEST(Locks, CtrlCEndsTheWait) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  Bg waiter(f.exec(app, {"--wait-lock", "5m"}), f.d.path(), 1);
  std::this_thread::sleep_for(1s);
  ASSERT_FALSE(waiter.ended());
  auto t0 = std::chrono::steady_clock::now();
  ::kill(waiter.pid(), SIGINT);
  EXPECT_EQ(waiter.wait(10s), kExitInterrupted) << waiter.err();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_NE(waiter.err().find("(interrupted while waiting)"), std::string::npos) << waiter.err();
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk);
}

TEST(Locks, AnInterruptedRunReleasesItsLock) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  ::kill(holder.pid(), SIGINT);
  EXPECT_EQ(holder.wait(20s), kExitInterrupted) << holder.out() << holder.err();
  EXPECT_TRUE(f.locks().empty());
  write_file(app + "/release", "");
  EXPECT_EQ(run_cli(f.exec(app)).code, kExitOk);
}

TEST(Locks, DryRunsRunBesideALiveRun) {
  Fixture f;
  std::string app = f.target("app");
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  auto dry = run_cli(f.exec(app, {"--dry-run"}));
  EXPECT_EQ(dry.code, kExitOk) << dry.out << dry.err;
  auto plan = run_cli(f.exec(app, {"--dry-run", "--save-plan", f.d / "plan.json"}));
  EXPECT_EQ(plan.code, kExitOk) << plan.out << plan.err;
  EXPECT_EQ(f.locks().size(), 1u);
  auto wait_dry = run_cli(f.exec(app, {"--dry-run", "--wait-lock", "5s"}));
  EXPECT_EQ(wait_dry.code, kExitUsage) << "a dry-run takes no lock, so it cannot wait for one";
  // A replay takes none either.
  auto replay = run_cli({"replay", "1", "--journal", f.journal});
  EXPECT_EQ(replay.code, kExitOk) << replay.out << replay.err;
  EXPECT_EQ(f.locks().size(), 1u);
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
}

TEST(Locks, APlanRefusedAtTheLockStaysUnexecuted) {
  Fixture f;
  std::string app = f.target("app");
  std::string plain = f.d / "plain.lua";
  write_file(plain, R"lua(
runbook{ name = "plain", version = "1.0.0", lock = "app:{app}", params = { app = { type = "path" } } }
step("touch", function(p) fs.write(p.app .. "/touched", "yes") end)
)lua");
  std::vector<std::string> plan{"exec", plain, "--journal", f.journal, "-p", "app=" + app};
  auto saved = plan;
  saved.insert(saved.end(), {"--dry-run", "--save-plan", f.d / "plan.json"});
  ASSERT_EQ(run_cli(saved).code, kExitOk);
  plan.insert(plan.end(), {"--plan", f.d / "plan.json"});
  Bg holder(f.exec(app), f.d.path(), 0);
  f.wait_locks(1);
  auto r = run_cli(plan);
  EXPECT_EQ(r.code, kExitRefused) << r.out << r.err;
  EXPECT_FALSE(std::filesystem::exists(app + "/touched"));
  write_file(app + "/release", "");
  EXPECT_EQ(holder.wait(), kExitOk) << holder.err();
  r = run_cli(plan);
  EXPECT_EQ(r.code, kExitOk) << r.out << r.err;
  EXPECT_EQ(read_file(app + "/touched"), "yes");
}

// Fails at step 3 when <app>/fail exists; otherwise holds there until <app>/release2.
const char* kResumable = R"lua(
runbook{ name = "fixit", version = "1.0.0",
  params = { app = { type = "path", target = true }, note = { default = "" } } }
step("claim", function(p) fs.write(p.app .. "/owner", tostring(run.id)) end)
step("wait", function(p)
  exec{ "sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', p.app .. "/release",
        timeout = "90s" }
end)
step("finish", function(p)
  if fs.exists(p.app .. "/fail") then error("asked to fail") end
  exec{ "sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', p.app .. "/release2",
        timeout = "90s" }
end)
)lua";

TEST(Locks, AResumeTakesTheOriginalsLock) {
  Fixture f(kResumable);
  std::string app = f.target("app");
  std::string key = "fixit:app=" + app;
  write_file(app + "/release", "");
  write_file(app + "/fail", "");
  auto failed = run_cli(f.exec(app));
  ASSERT_EQ(failed.code, kExitFailed) << failed.out << failed.err;
  EXPECT_TRUE(f.locks().empty()) << "a failed run gives its lock back";
  std::filesystem::remove(app + "/release");
  std::filesystem::remove(app + "/fail");

  // Another live run holds the target: the resume is refused, and the original stays resumable.
  Bg other(f.exec(app, {"-p", "note=second"}), f.d.path(), 0);
  auto held = f.wait_locks(1);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0]["key"], key);
  auto refused = run_cli({"resume", "1", "--journal", f.journal});
  EXPECT_EQ(refused.code, kExitRefused) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("lock \"" + key + "\" is held by run #2 by "), std::string::npos)
      << refused.err;
  {
    Journal j(f.journal);
    EXPECT_EQ(j.run(1)->resumed_by, 0) << "a refused resume does not continue the run";
  }
  write_file(app + "/release", "");
  write_file(app + "/release2", "");
  EXPECT_EQ(other.wait(), kExitOk) << other.err();
  std::filesystem::remove(app + "/release2");

  // Now the resume goes ahead and holds the original's key while it runs.
  Bg resume({"resume", "1", "--journal", f.journal}, f.d.path(), 1);
  held = f.wait_locks(1);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0]["key"], key);
  EXPECT_EQ(held[0]["pid"], resume.pid());
  auto beside = run_cli(f.exec(app));
  EXPECT_EQ(beside.code, kExitRefused) << beside.out << beside.err;
  write_file(app + "/release2", "");
  EXPECT_EQ(resume.wait(), kExitOk) << resume.out() << resume.err();
  EXPECT_TRUE(f.locks().empty());
}

}  // namespace
}  // namespace rb::test
