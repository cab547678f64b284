// Issue 10's whole-product test: one runbook that uses secrets in every way (a token with 25+
// derivations, an environment token, a secret URL to a real Redis with requirepass, a DSN to a
// real PostgreSQL with a password), run live and with --json, shown, reported, replayed, planned,
// killed with SIGKILL in the middle and resumed with the secrets given by environment and by file.
// Then every byte it left behind — output, the journal and its WAL (also snapshotted during the
// run), artifacts, plan files — and /proc/*/cmdline sampled all along hold none of the secrets.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "support/pg_server.h"
#include "support/redis_server.h"
#include "support/support.h"

using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

const std::string kToken = "Zq8TokenX7vR2mW4nB5";
const std::string kEnvToken = "EnvTok-93hfQ2pLx";
const std::string kRedisPw = "RdPw55xKq7";

const char* kBook = R"LUA(
runbook { name = "e2e-secrets", version = "1.0.0", params = {
  token = { type = "string", secret = true, required = true, doc = "API token" },
  cache = { type = "url", secret = true, required = true, doc = "Redis with its password" },
  db    = { type = "string", secret = true, required = true, doc = "PostgreSQL DSN" },
  dir   = { type = "path", required = true },
  pause = { type = "bool", default = false },
} }

step("derive", function(p)
  local t = p.token
  local spaced = t:gsub(".", "%0 ")
  local pieces = {}
  for i = 1, #t, 3 do pieces[#pieces + 1] = t:sub(i, i + 2) end
  local forms = {
    t, t:upper(), t:lower(), t:reverse(), t:sub(1, 12), t:sub(3, 10), t:sub(-8), t:rep(2),
    t:rep(2, "-"), string.format("%q", t), string.format("[%s]", t), string.format("%-30s|", t),
    spaced, "Bearer " .. t, table.concat({ "x", t, "y" }, ","), table.concat(pieces, "."),
    json.encode({ key = t, list = { t:upper() } }), tostring(t), (t:gsub("Token", "TOKEN")),
    t:match("(T%w+)"), (t:lower():reverse()), t:upper():sub(2, 9), string.format("%s:%s", t, t:lower()),
    table.concat({ t:reverse(), t:upper() }), (spaced:upper()),
  }
  for w in t:gmatch("(%u%l%l%l+)") do forms[#forms + 1] = w end
  assert(#forms >= 25, #forms)
  for i, f in ipairs(forms) do log.info("form " .. i .. ": " .. f) end
  -- Children get it by environment and stdin only.
  local r = exec{ "sh", "-c", "printf '%s|' \"$T\"; cat", env = { T = t:upper() }, stdin = t:reverse(), readonly = true }
  -- (A resume answers this call from the journal, where its output is redacted: so the real
  -- values are checked in Redis below, not here.)
  assert(r.code == 0)
  local e = env.get("E2E_API_TOKEN")
  log.info("env token " .. e .. " and lowered " .. e:lower())
  exec{ "printenv", "X", env = { X = e }, readonly = true }
  fs.write{ path = p.dir .. "/derived.txt", content = "one " .. t:reverse() .. "\n" }
end)

step("redis", function(p)
  redis.set{ url = p.cache, key = "e2e:" .. p.token:sub(1, 6), value = p.token:upper() }
  local v = redis.get{ url = p.cache, key = "e2e:" .. p.token:sub(1, 6) }
  assert(v ~= nil, "redis has no value")  -- (redacted when a resume answers it from the journal)
  log.info("redis has " .. v:lower())
end)

step("pg", function(p)
  local rows = pg.query{ dsn = p.db, sql = "SELECT $1::text AS t", params = { p.token:reverse() } }
  log.info("pg said " .. rows[1].t)
  pg.dump{ dsn = p.db, file = p.dir .. "/db.dump" }
end)

step("pause", function(p)
  if not p.pause then return end
  fs.write{ path = p.dir .. "/at-pause", content = "1" }
  wait.poll(function() return fs.exists(p.dir .. "/go") end, { timeout = "60s", interval = "100ms", what = "the go file" })
end)

step("finish", function(p)
  log.info("finished with " .. p.token:sub(2, 13))
  if p.dir:find("fail") then error("the rollback failed with " .. p.token:upper()) end
end)
)LUA";

// Every form the runbook derives (those of 4 characters or more), and the other secrets.
std::vector<std::string> needles(const std::string& pg_password) {
  auto upper = [](std::string s) { for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c))); return s; };
  auto lower = [](std::string s) { for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c))); return s; };
  auto rev = [](std::string s) { std::reverse(s.begin(), s.end()); return s; };
  const std::string& t = kToken;
  std::string spaced;
  for (char c : t) spaced += std::string(1, c) + " ";
  std::string dotted;
  for (size_t i = 0; i < t.size(); i += 3) dotted += (i ? "." : "") + t.substr(i, 3);
  return {t, upper(t), lower(t), rev(t), t.substr(0, 12), t.substr(2, 8), t.substr(t.size() - 8),
          spaced.substr(0, spaced.size() - 1), upper(spaced.substr(0, 20)), dotted,
          lower(rev(t)), upper(t).substr(1, 8), t.substr(1, 12), t.substr(3, 12) /* "TokenX7vR2mW" */,
          kEnvToken, lower(kEnvToken), kRedisPw, pg_password};
}

// /proc/*/cmdline of every process, sampled until stopped; what it saw is kept.
class CmdlineSampler {
 public:
  CmdlineSampler() : th_([this] { loop(); }) {}
  ~CmdlineSampler() { stop(); }
  void stop() {
    done_ = true;
    if (th_.joinable()) th_.join();
  }
  size_t samples() const { return samples_; }
  size_t runbook_seen() const { return runbook_seen_; }
  // The command lines holding a needle, but not those of other tests running beside this one
  // (they name their own temp dirs, and share the PostgreSQL fixture's password): a command
  // line naming a test dir that is none of `mine` is skipped.
  std::vector<std::string> holding(const std::vector<std::string>& ns, const std::vector<std::string>& mine) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const auto& c : seen_) {
      bool other = false;
      for (size_t at = c.find("runbook-test-"); at != std::string::npos; at = c.find("runbook-test-", at + 1)) {
        bool is_mine = false;
        for (const auto& m : mine)
          if (c.compare(at, m.size(), m) == 0) is_mine = true;
        if (!is_mine) other = true;
      }
      if (other) continue;
      for (const auto& n : ns)
        if (c.find(n) != std::string::npos) out.push_back(c);
    }
    return out;
  }

 private:
  void loop() {
    while (!done_) {
      std::error_code ec;
      for (auto it = stdfs::directory_iterator("/proc", ec); !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        // read(2), not a stream: a process that exits while it is read makes a stream throw.
        std::string c;
        int fd = ::open((it->path() / "cmdline").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[4096];
        ssize_t n;
        while (c.size() < (1 << 20) && (n = ::read(fd, buf, sizeof buf)) > 0) c.append(buf, static_cast<size_t>(n));
        ::close(fd);
        if (c.empty()) continue;
        std::replace(c.begin(), c.end(), '\0', ' ');
        if (c.find(RUNBOOK_BIN) != std::string::npos) ++runbook_seen_;
        std::lock_guard<std::mutex> l(mu_);
        seen_.insert(std::move(c));
      }
      ++samples_;
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  }
  std::atomic<bool> done_{false};
  std::atomic<size_t> samples_{0}, runbook_seen_{0};
  std::mutex mu_;
  std::set<std::string> seen_;
  std::thread th_;
};

mode_t mode_of(const std::string& p) {
  struct stat sb {};
  if (::stat(p.c_str(), &sb) != 0) return 07777;
  return sb.st_mode & 0777;
}

// Which needles occur in `text`.
std::vector<std::string> found_in(const std::string& text, const std::vector<std::string>& ns) {
  std::vector<std::string> out;
  for (const auto& n : ns)
    if (text.find(n) != std::string::npos) out.push_back(n);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " | ") + x;
  return s;
}

bool wait_file(const std::string& p, int ms) {
  for (int i = 0; i < ms / 20; ++i) {
    if (stdfs::exists(p)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST(SecretsEndToEnd, NoSecretOrDerivedFormIsLeftAnywhere) {
  PgServer pg;
  RedisServer redis(kRedisPw);
  TempDir d, state;
  const std::string work = d / "work";
  stdfs::create_directories(work);
  write_file(d / "rb.lua", kBook);
  const std::string journal = state / "runbook/journal.db";
  const std::string cache_url = redis.url(0, ":" + kRedisPw);
  // The secrets travel by file and environment only: nothing below puts one on an argv.
  write_file(d / "secrets.env", "token=" + kToken + "\ncache=" + cache_url + "\ndb=" + pg.dsn() + "\n");
  ::chmod((d / "secrets.env").c_str(), 0600);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", journal}, {"E2E_API_TOKEN", kEnvToken}};
  std::map<std::string, std::string> env_secrets = env;
  env_secrets["RUNBOOK_PARAM_TOKEN"] = kToken;
  env_secrets["RUNBOOK_PARAM_CACHE"] = cache_url;
  env_secrets["RUNBOOK_PARAM_DB"] = pg.dsn();
  const auto ns = needles(PgServer::kPassword);
  std::string everything;  // all output, concatenated
  auto keep = [&](const CliResult& r) { everything += r.out + r.err; return r; };

  CmdlineSampler sampler;
  ::umask(0);  // the state must be private whatever the umask
  // 1. live, secrets from the file
  auto live = keep(run_cli({"exec", d / "rb.lua", "--param-file", d / "secrets.env", "-p", "dir=" + work}, env));
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  EXPECT_NE(live.out.find("redis://:***@127.0.0.1:" + std::to_string(redis.port())), std::string::npos)
      << "a secret URL keeps its host visible:\n" << live.out;
  EXPECT_NE(live.out.find("form 25"), std::string::npos) << live.out;
  // 2. live with --json, secrets from the environment
  const std::string work2 = d / "work2";
  stdfs::create_directories(work2);
  auto json_run = keep(run_cli({"exec", d / "rb.lua", "--json", "-p", "dir=" + work2}, env_secrets));
  ASSERT_EQ(json_run.code, 0) << json_run.out << json_run.err;
  EXPECT_FALSE(json_run.events().empty());
  // 3. a failing run: the error message holds a derived form
  const std::string failwork = d / "fail";
  stdfs::create_directories(failwork);
  auto failed = keep(run_cli({"exec", d / "rb.lua", "--param-file", d / "secrets.env", "-p", "dir=" + failwork}, env));
  EXPECT_EQ(failed.code, 1) << failed.out << failed.err;
  EXPECT_NE(failed.out.find("the rollback failed with ***"), std::string::npos) << failed.out;
  // 4. every way of looking at the runs
  for (std::string id : {"1", "2", "3"}) {
    keep(run_cli({"show", id}, env));
    keep(run_cli({"show", id, "--json"}, env));
    keep(run_cli({"report", id}, env));
    keep(run_cli({"report", id, "--format", "json"}, env));
    auto rp = keep(run_cli({"replay", id}, env));
    EXPECT_EQ(rp.code, 0) << "replay " << id << ":\n" << rp.out << rp.err;
    EXPECT_EQ(rp.out.find("diverge"), std::string::npos) << rp.out;
  }
  keep(run_cli({"runs"}, env));
  keep(run_cli({"stats"}, env));
  // 5. a rehearsal saved as a plan
  auto plan = keep(run_cli({"exec", d / "rb.lua", "--dry-run", "--save-plan", d / "plan.json", "--param-file",
                            d / "secrets.env", "-p", "dir=" + work}, env));
  EXPECT_EQ(plan.code, 0) << plan.out << plan.err;
  ASSERT_TRUE(stdfs::exists(d / "plan.json"));

  // 6. SIGKILL in the middle (while waiting in "pause"), resumed with the secrets by environment;
  //    then again, resumed with the secrets by file. The WAL is snapshotted while the run waits.
  std::string wal_snapshots;
  for (int round = 0; round < 2; ++round) {
    const std::string w = d / ("kill" + std::to_string(round));
    stdfs::create_directories(w);
    Child c({RUNBOOK_BIN, "exec", d / "rb.lua", "--param-file", d / "secrets.env", "-p", "dir=" + w, "-p", "pause=true"},
            env, d / ("kill" + std::to_string(round) + ".log"));
    ASSERT_TRUE(wait_file(w + "/at-pause", 60000)) << read_file(d / ("kill" + std::to_string(round) + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (stdfs::exists(journal + "-wal")) wal_snapshots += read_file(journal + "-wal");
    ASSERT_EQ(::kill(c.pid(), SIGKILL), 0);
    int status = 0;
    ::waitpid(c.pid(), &status, 0);
    everything += read_file(d / ("kill" + std::to_string(round) + ".log"));
    write_file(w + "/go", "1");
    // Without the secrets a resume refuses, naming them, and never acts with a masked value.
    auto refused = keep(run_cli({"resume", "last"}, env));
    EXPECT_EQ(refused.code, 2) << refused.out << refused.err;
    EXPECT_NE(refused.err.find("RUNBOOK_PARAM_TOKEN"), std::string::npos) << refused.err;
    auto resumed = round == 0 ? keep(run_cli({"resume", "last"}, env_secrets))
                              : keep(run_cli({"resume", "last", "--param-file", d / "secrets.env"}, env));
    EXPECT_EQ(resumed.code, 0) << "round " << round << ":\n" << resumed.out << resumed.err;
    EXPECT_NE(resumed.out.find("finished with ***"), std::string::npos) << resumed.out;
    keep(run_cli({"report", "last"}, env));
  }
  sampler.stop();

  // The runbook itself got the real values: Redis holds the upper-cased token.
  RedisClient rc(redis.port(), kRedisPw);
  EXPECT_EQ(rc.get("e2e:" + kToken.substr(0, 6)), [] { std::string s = kToken; for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch))); return s; }());

  // Nothing left anywhere holds a secret or a derived form.
  EXPECT_EQ(join(found_in(everything, ns)), "") << "in the output";
  EXPECT_EQ(join(found_in(wal_snapshots, ns)), "") << "in the WAL during the run";
  std::error_code ec;
  size_t files = 0;
  for (auto it = stdfs::recursive_directory_iterator(state.path(), ec); !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    ++files;
    EXPECT_EQ(join(found_in(read_file(it->path().string()), ns)), "") << it->path();
  }
  EXPECT_GE(files, 2u) << "the journal and the artifacts were searched";
  EXPECT_EQ(join(found_in(read_file(d / "plan.json"), ns)), "") << "in the plan";
  EXPECT_GT(sampler.samples(), 100u);
  EXPECT_GT(sampler.runbook_seen(), 0u) << "the sampler saw runbook running";
  auto test_dir = [](const std::string& p) { return p.substr(p.find("runbook-test-")); };
  EXPECT_EQ(join(sampler.holding(ns, {test_dir(d.path()), test_dir(state.path()), test_dir(pg.dir()), test_dir(redis.dir())})), "")
      << "in a /proc/*/cmdline";

  // Private state, whatever the umask (0 above).
  EXPECT_EQ(mode_of(state / "runbook"), 0700u);
  EXPECT_EQ(mode_of(journal), 0600u);
  if (stdfs::exists(journal + "-wal")) {
    EXPECT_EQ(mode_of(journal + "-wal"), 0600u);
  }
  // The artifacts root and each run's directory (what is below them is unreachable to others).
  EXPECT_EQ(mode_of(state / "runbook/artifacts"), 0700u);
  size_t run_dirs = 0;
  for (auto it = stdfs::directory_iterator(state / "runbook/artifacts", ec); !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    ++run_dirs;
    EXPECT_EQ(mode_of(it->path().string()), 0700u) << it->path();
  }
  EXPECT_GE(run_dirs, 3u);
  ::umask(022);
}
