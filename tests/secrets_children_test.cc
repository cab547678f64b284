// Secrets reach child processes only through their environment, stdin or a private file, never
// argv: every user can read /proc/PID/cmdline. Real runbooks through the real binary, with a
// sampler thread reading every process's cmdline every few milliseconds while they run. The
// secret reaches the runbook through fs.read{ secret = true } (registered for redaction), so
// that the runbook's own argv does not hold it either.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "os/files.h"
#include "os/process.h"
#include "support/pg_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

// Reads /proc/*/cmdline of every process every ~2 ms until stopped. `hits`: command lines that
// held the needle; `marker_seen`: how many samples held the marker (proof it saw the children).
class CmdlineSampler {
 public:
  CmdlineSampler(std::string needle, std::string marker)
      : needle_(std::move(needle)), marker_(std::move(marker)), thread_([this] { loop(); }) {}
  ~CmdlineSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> hits() {
    std::lock_guard<std::mutex> l(mu_);
    return hits_;
  }
  int marker_seen() const { return marker_seen_; }
  int rounds() const { return rounds_; }

 private:
  void loop() {
    while (!stop_) {
      DIR* d = ::opendir("/proc");
      if (d) {
        while (dirent* e = ::readdir(d)) {
          if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
          // read(2), not a stream: a process that ends mid-read fails the read (ESRCH), quietly.
          int fd = ::open((std::string("/proc/") + e->d_name + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) continue;
          std::string text;
          char buf[4096];
          for (int i = 0; i < 64; ++i) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            text.append(buf, static_cast<size_t>(n));
          }
          ::close(fd);
          for (char& c : text)
            if (c == '\0') c = ' ';
          if (text.find(needle_) != std::string::npos) {
            std::lock_guard<std::mutex> l(mu_);
            if (hits_.size() < 20) hits_.push_back(text);
          }
          if (!marker_.empty() && text.find(marker_) != std::string::npos) ++marker_seen_;
        }
        ::closedir(d);
      }
      ++rounds_;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  std::string needle_, marker_;
  std::atomic<bool> stop_{false};
  std::atomic<int> marker_seen_{0}, rounds_{0};
  std::mutex mu_;
  std::vector<std::string> hits_;
  std::thread thread_;
};

std::string unique_secret(const std::string& stem) {
  return stem + std::to_string(::getpid()) + "x" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
}

class SecretsChildren : public ::testing::Test {
 protected:
  // The runbook: params dir and secret_file; `body` runs in one step with `secret` read from
  // the file (registered as a secret).
  CliResult run(const std::string& body, const std::string& secret,
                const std::map<std::string, std::string>& extra_params = {},
                std::map<std::string, std::string> env = {}) {
    write_file(dir_ / "secret.txt", secret);
    std::string params = "dir = { type = 'path' }, secret_file = { type = 'path' }";
    for (const auto& [k, v] : extra_params) params += ", " + k + " = { type = 'string' }";
    write_file(dir_ / "rb.lua", "runbook { name = 'secrets-children', version = '1.0.0', params = { " + params +
                                    " } }\n"
                                    "step('s', function(p)\n"
                                    "  local secret = fs.read{ path = p.secret_file, secret = true }\n" +
                                    body + "\nend)\n");
    std::vector<std::string> args = {"exec", dir_ / "rb.lua", "--yes", "-p", "dir=" + dir_.path(),
                                     "-p", "secret_file=" + (dir_ / "secret.txt")};
    for (const auto& [k, v] : extra_params) args.insert(args.end(), {"-p", k + "=" + v});
    env.emplace("RUNBOOK_JOURNAL", dir_ / "journal.db");
    return run_cli(args, env, 300);
  }
  // Nothing the run wrote (journal, artifacts) holds the secret; only the file it came from.
  void expect_written_nowhere(const std::string& secret) {
    auto files = files_containing(dir_.path(), secret, "secret.txt");
    std::vector<std::string> bad;
    for (const auto& f : files)
      if (f.find("/wheels/") == std::string::npos && f.find("auth_requests.log") == std::string::npos &&
          f.find("/venv/") == std::string::npos)
        bad.push_back(f);
    EXPECT_TRUE(bad.empty()) << "the secret was written to " << (bad.empty() ? "" : bad[0]);
  }
  TempDir dir_;
};

std::string both(const CliResult& r) { return r.out + "\n" + r.err; }

// (a) A secret on exec's argv is refused, naming exec, the argv item and the safe ways.
TEST_F(SecretsChildren, ExecRefusesASecretInArgv) {
  std::string secret = unique_secret("argvSecret-");
  auto r = run("  exec{ 'echo', '--password=' .. secret }", secret);
  EXPECT_EQ(r.code, 1) << both(r);
  EXPECT_NE(both(r).find("exec: refused to run: argv item 2 holds a secret"), std::string::npos) << both(r);
  EXPECT_NE(both(r).find("env = "), std::string::npos) << both(r);
  EXPECT_NE(both(r).find("stdin = "), std::string::npos) << both(r);
  EXPECT_NE(both(r).find("allow_secret_argv = true"), std::string::npos) << both(r);
  EXPECT_EQ(both(r).find(secret), std::string::npos) << both(r);
  expect_written_nowhere(secret);
}

TEST_F(SecretsChildren, ExecWithAllowSecretArgvRuns) {
  std::string secret = unique_secret("argvAllowed-");
  auto r = run(
      "  local out = exec{ 'sh', '-c', 'printf %s \"$1\" > \"$2\"', 'sh', secret, p.dir .. '/out.txt',"
      " allow_secret_argv = true }\n"
      "  assert(out.code == 0)",
      secret);
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_EQ(read_file(dir_ / "out.txt"), secret);
  EXPECT_NE(both(r).find("allow_secret_argv: argv item 5 holds a secret"), std::string::npos) << both(r);
  EXPECT_EQ(both(r).find(secret), std::string::npos) << both(r);
}

// A dry-run says the exec would fail, before anything runs.
TEST_F(SecretsChildren, DryRunShowsTheRefusal) {
  std::string secret = unique_secret("dryArgv-");
  write_file(dir_ / "secret.txt", secret);
  write_file(dir_ / "rb.lua",
             "runbook { name = 'dry', version = '1.0.0', params = { secret_file = { type = 'path' } } }\n"
             "step('s', function(p)\n"
             "  local secret = fs.read{ path = p.secret_file, secret = true }\n"
             "  exec{ 'true', secret }\nend)\n");
  auto r = run_cli({"exec", dir_ / "rb.lua", "--dry-run", "-p", "secret_file=" + (dir_ / "secret.txt")},
                   {{"RUNBOOK_JOURNAL", dir_ / "journal.db"}});
  EXPECT_NE(both(r).find("argv item 2 holds a secret"), std::string::npos) << both(r);
  EXPECT_EQ(both(r).find(secret), std::string::npos) << both(r);
}

// (b) By env and stdin the program gets the secret, and no process's cmdline ever shows it.
TEST_F(SecretsChildren, ExecByEnvAndStdinNeverShowsTheSecret) {
  std::string secret = unique_secret("envStdin-");
  CmdlineSampler sampler(secret, "rb-marker-sleep");
  auto r = run(
      "  for i = 1, 3 do\n"
      "    local out = exec{ 'sh', '-c', 'sleep 0.2; test \"$TOKEN\" = \"$(cat)\" && printf ok > \"$1\"',"
      " 'rb-marker-sleep', p.dir .. '/ok.txt', env = { TOKEN = secret }, stdin = secret }\n"
      "    assert(out.code == 0)\n"
      "  end",
      secret);
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_EQ(read_file(dir_ / "ok.txt"), "ok");
  EXPECT_GT(sampler.marker_seen(), 0) << "the sampler never saw the child (" << sampler.rounds() << " rounds)";
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the secret: " << (hits.empty() ? "" : hits[0]);
  EXPECT_EQ(both(r).find(secret), std::string::npos) << both(r);
  expect_written_nowhere(secret);
}

// A 0600 private file: mode from the first byte, removed at scope end.
TEST(PrivateFile, OwnerOnlyAndRemoved) {
  std::string path;
  {
    os::PrivateFile f("rb-test-private-", "token=abc\n");
    path = f.path();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(read_file(path), "token=abc\n");
  }
  EXPECT_FALSE(stdfs::exists(path));
}

std::string sh_out(const std::vector<std::string>& argv, int* code = nullptr) {
  os::ProcessSpec spec;
  spec.argv = argv;
  spec.timeout = std::chrono::seconds(240);
  auto r = os::run_process(spec);
  if (code) *code = r.code;
  return r.stdout_text + r.stderr_text;
}

// (c) pip installs from a find-links index behind basic auth: the password in the URL goes by
// PIP_FIND_LINKS, never argv.
TEST_F(SecretsChildren, PipFindLinksPasswordStaysOutOfArgv) {
  ASSERT_FALSE(os::which("python3").empty()) << "python3 missing: apt-get install -y python3 python3-venv";
  std::string wheels = dir_ / "wheels";
  stdfs::create_directories(wheels);
  int code = -1;
  std::string out = sh_out({"python3", RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py", wheels, "rb-private==1.0.0"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = sh_out({"python3", "-m", "venv", dir_ / "venv"}, &code);
  ASSERT_EQ(code, 0) << out << " (apt-get install -y python3-venv)";
  std::string password = unique_secret("pipPw-");
  int port = free_port();
  Child server({"python3", RUNBOOK_TEST_SUPPORT_DIR "/auth_index.py", std::to_string(port), wheels, "deploy"},
               {{"AUTH_PASSWORD", password}});
  ASSERT_TRUE(wait_for_port(port, 10000)) << "auth_index.py did not start";
  std::string url = "http://deploy:" + password + "@127.0.0.1:" + std::to_string(port) + "/";
  CmdlineSampler sampler(password, "pip");
  // The URL (with its password) is the secret file's content, so the runbook's argv is clean.
  auto r = run(
      "  local r = pip.install{ venv = p.dir .. '/venv', packages = { 'rb-private==1.0.0' },"
      " find_links = secret, no_index = true }\n"
      "  assert(r.changed['rb-private'].to == '1.0.0')",
      url);
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  std::string log = read_file(dir_ / "auth_requests.log");
  EXPECT_NE(log.find("ok GET /rb_private-1.0.0-py3-none-any.whl"), std::string::npos) << log;
  EXPECT_GT(sampler.marker_seen(), 0) << "the sampler never saw pip";
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the password: " << (hits.empty() ? "" : hits[0]);
  EXPECT_EQ(both(r).find(password), std::string::npos) << both(r);
  expect_written_nowhere(password);
}

// npm's token =: through a private npmrc (NPM_CONFIG_USERCONFIG), never argv, against a local
// registry that answers only "Authorization: Bearer <token>".
TEST_F(SecretsChildren, NpmTokenGoesThroughAPrivateNpmrc) {
  ASSERT_FALSE(os::which("npm").empty()) << "npm missing: apt-get install -y npm";
  std::string served = dir_ / "served";
  stdfs::create_directories(served + "/tarballs");
  write_file(dir_ / "src/package.json", R"({"name":"rb-npm-private","version":"1.0.0","main":"index.js"})");
  write_file(dir_ / "src/index.js", "module.exports = 'private';\n");
  os::ProcessSpec pack;
  pack.argv = {"npm", "pack", "--silent", "--pack-destination", served + "/tarballs"};
  pack.cwd = dir_ / "src";
  pack.env = {{"npm_config_cache", dir_ / "pack-cache"}};
  pack.timeout = std::chrono::seconds(120);
  auto pr = os::run_process(pack);
  ASSERT_EQ(pr.code, 0) << pr.stderr_text;
  int port = free_port();
  std::string base = "http://127.0.0.1:" + std::to_string(port) + "/";
  write_file(served + "/rb-npm-private",
             R"({"name":"rb-npm-private","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":)"
             R"({"name":"rb-npm-private","version":"1.0.0","dist":{"tarball":")" +
                 base + R"(tarballs/rb-npm-private-1.0.0.tgz"}}}})");
  write_file(dir_ / "app/package.json",
             R"({"name":"app","version":"0.1.0","private":true,"dependencies":{"rb-npm-private":"1.0.0"}})");
  std::string token = unique_secret("npmTok-");
  Child server({"python3", RUNBOOK_TEST_SUPPORT_DIR "/auth_index.py", std::to_string(port), served, "-"},
               {{"AUTH_TOKEN", token}});
  ASSERT_TRUE(wait_for_port(port, 10000)) << "auth_index.py did not start";
  CmdlineSampler sampler(token, "npm");
  auto r = run("  local r = npm.install{ dir = p.dir .. '/app', registry = p.registry, token = secret,"
               " prefer_offline = false }",
               token, {{"registry", base}},
               {{"npm_config_cache", dir_ / "npm-cache"}, {"HOME", dir_.path()}});
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_EQ(read_file(dir_ / "app/node_modules/rb-npm-private/index.js"), "module.exports = 'private';\n");
  std::string log = read_file(dir_ / "auth_requests.log");
  EXPECT_NE(log.find("ok GET /rb-npm-private"), std::string::npos) << log;
  EXPECT_GT(sampler.marker_seen(), 0) << "the sampler never saw npm";
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the token: " << (hits.empty() ? "" : hits[0]);
  EXPECT_EQ(both(r).find(token), std::string::npos) << both(r);
  // The private npmrc is gone once the call ends.
  const char* t = std::getenv("TMPDIR");
  for (const auto& e : stdfs::directory_iterator(t && *t ? t : "/tmp"))
    if (e.path().filename().string().rfind("runbook-npmrc-", 0) == 0) {
      EXPECT_EQ(read_file(e.path().string()).find(token), std::string::npos) << e.path();
    }
  expect_written_nowhere(token);
}

// supervisorctl with a serverurl holding credentials: a private [supervisorctl] config (-c)
// instead of -s URL, against a real supervisord whose HTTP server wants that user and password.
TEST_F(SecretsChildren, SupervisorctlCredentialsGoThroughAPrivateConfig) {
  ASSERT_FALSE(os::which("supervisord").empty()) << "supervisord missing: apt-get install -y supervisor";
  TempDir sup;  // supervisord's files (its config holds the password) apart from the run's
  std::string password = unique_secret("supPw-");
  int port = free_port();
  std::string conf = sup / "supervisord.conf";
  write_file(conf, "[inet_http_server]\nport=127.0.0.1:" + std::to_string(port) +
                       "\nusername=deploy\npassword=" + password +
                       "\n[supervisord]\nlogfile=" + (sup / "supervisord.log") + "\npidfile=" +
                       (sup / "supervisord.pid") + "\nchildlogdir=" + sup.path() +
                       "\nnodaemon=true\nuser=root\n"
                       "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                       "supervisor.rpcinterface:make_main_rpcinterface\n"
                       "[program:sleeper]\ncommand=sleep 300\nautostart=false\nstartsecs=1\nstopwaitsecs=5\n");
  Child supervisord({"supervisord", "-c", conf}, {}, sup / "supervisord.out");
  ASSERT_TRUE(wait_for_port(port, 10000)) << read_file(sup / "supervisord.out");
  std::string url = "http://deploy:" + password + "@127.0.0.1:" + std::to_string(port);
  CmdlineSampler sampler(password, "supervisorctl");
  auto r = run(
      "  service.define{ name = 'sl', backend = 'supervisor', program = 'sleeper', serverurl = secret }\n"
      "  assert(service.status('sl').state == 'stopped')\n"
      "  local s = service.start('sl')\n"
      "  assert(s.state == 'running' and s.pid, json.encode(s))\n"
      "  local x = service.stop('sl')\n"
      "  assert(x.state == 'stopped', json.encode(x))",
      url);
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_GT(sampler.marker_seen(), 0) << "the sampler never saw supervisorctl";
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the password: " << (hits.empty() ? "" : hits[0]);
  EXPECT_EQ(both(r).find(password), std::string::npos) << both(r);
  expect_written_nowhere(password);
}

// (d) A git remote URL with credentials: the password is registered (redacted everywhere), and
// the transfer (libgit2 in a forked child: its cmdline is runbook's own) never shows it.
TEST_F(SecretsChildren, GitRemotePasswordIsRegisteredAndNeverOnACmdline) {
  ASSERT_FALSE(os::which("git").empty()) << "git missing: apt-get install -y git";
  int code = -1;
  std::string repo = dir_ / "repo";
  std::string out = sh_out({"git", "init", "-q", repo}, &code);
  ASSERT_EQ(code, 0) << out;
  std::string password = unique_secret("gitPw-");
  int port = free_port();
  stdfs::create_directories(dir_ / "served");
  Child server({"python3", RUNBOOK_TEST_SUPPORT_DIR "/auth_index.py", std::to_string(port), dir_ / "served",
                "deploy"},
               {{"AUTH_PASSWORD", password}});
  ASSERT_TRUE(wait_for_port(port, 10000)) << "auth_index.py did not start";
  std::string url = "http://deploy:" + password + "@127.0.0.1:" + std::to_string(port) + "/nothing.git";
  CmdlineSampler sampler(password, "");
  // The server is no git server: the fetch fails after authenticating, and its error (which
  // names the URL) must not show the password.
  auto r = run(
      "  local ok, err = pcall(git.fetch, { repo = p.dir .. '/repo', remote = secret, timeout = '10s' })\n"
      "  assert(not ok)\n"
      "  log.info('fetch failed: ' .. tostring(err))",
      url);
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_NE(both(r).find("fetch failed"), std::string::npos) << both(r);
  EXPECT_NE(both(r).find("cannot fetch from ***"), std::string::npos) << both(r);
  EXPECT_EQ(both(r).find(password), std::string::npos) << both(r);
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the password: " << (hits.empty() ? "" : hits[0]);
  std::string log = read_file(dir_ / "auth_requests.log");
  EXPECT_NE(log.find("ok GET /nothing.git/info/refs"), std::string::npos) << "the credentials did not reach the server: " << log;
  expect_written_nowhere(password);
}

// (e) pg.dump against a real PostgreSQL with password authentication: pg_dump gets the password
// by PGPASSWORD, its argv the DSN without it.
TEST_F(SecretsChildren, PgDumpPasswordStaysOutOfArgv) {
  std::string why = PgServer::unavailable();
  ASSERT_TRUE(why.empty()) << why << " (apt-get install -y postgresql; run as root)";
  std::unique_ptr<PgServer> pg;
  try {
    pg = std::make_unique<PgServer>();
  } catch (const std::exception& e) {
    FAIL() << "PostgreSQL did not start: " << e.what();
  }
  pg->sql("SET ROLE app; CREATE TABLE t(id int); INSERT INTO t VALUES (1), (2);");
  CmdlineSampler sampler(PgServer::kPassword, "pg_dump");
  auto r = run("  local d = pg.dump{ dsn = secret, file = p.dir .. '/app.dump', bin = '" + pg->bin() +
                   "' }\n"
                   "  assert(d.path)",
               pg->dsn());
  sampler.stop();
  EXPECT_EQ(r.code, 0) << both(r);
  EXPECT_TRUE(stdfs::exists(dir_ / "app.dump"));
  EXPECT_GT(sampler.marker_seen(), 0) << "the sampler never saw pg_dump";
  auto hits = sampler.hits();
  EXPECT_TRUE(hits.empty()) << "a cmdline showed the password: " << (hits.empty() ? "" : hits[0]);
  EXPECT_EQ(both(r).find(PgServer::kPassword), std::string::npos) << both(r);
  expect_written_nowhere(PgServer::kPassword);
}

}  // namespace
