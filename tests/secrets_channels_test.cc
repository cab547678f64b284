// Secrets without argv: --param-file, RUNBOOK_PARAM_<NAME>, a prompt without echo; private state
// (journal, state dir, artifacts); a resume that asks for the secrets again. The real binary.
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "support/support.h"

using namespace rb::test;

namespace {

const char* kBook = R"(
runbook{ name = "sec", version = "1.0.0", params = {
  token = { secret = true, required = true }, who = { default = "world" } } }
step("a", function(p)
  log.info("hello " .. p.who .. " token length " .. #p.token)
  time.now()
end)
step("b", function(p) time.now() end)
)";

mode_t mode_of(const std::string& p) {
  struct stat sb {};
  if (::stat(p.c_str(), &sb) != 0) return 07777;
  return sb.st_mode & 0777;
}

std::string journal_text(const TempDir& d) {
  std::string s;
  for (const char* f : {"j.db", "j.db-wal"}) {
    struct stat sb {};
    if (::stat((d / f).c_str(), &sb) == 0) s += read_file(d / f);
  }
  return s;
}

}  // namespace

TEST(SecretsChannels, ParamFileAcceptedOnlyWhenPrivate) {
  TempDir d;
  write_file(d / "rb.lua", kBook);
  write_file(d / "p.env", "# the token\n\ntoken=s3cr3t-file-xyz\nwho = ignored-space\n");
  ::chmod((d / "p.env").c_str(), 0600);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}};
  auto ok = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("token length 15"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("s3cr3t-file-xyz"), std::string::npos);
  EXPECT_EQ(ok.err.find("every user"), std::string::npos) << ok.err;  // no argv warning
  EXPECT_EQ(journal_text(d).find("s3cr3t-file-xyz"), std::string::npos);

  ::chmod((d / "p.env").c_str(), 0644);
  auto wide = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env);
  EXPECT_EQ(wide.code, 2) << wide.out << wide.err;
  EXPECT_NE(wide.err.find("has mode 644"), std::string::npos) << wide.err;
  EXPECT_EQ(wide.err.find("s3cr3t-file-xyz"), std::string::npos);

  if (::geteuid() == 0) {
    ::chmod((d / "p.env").c_str(), 0600);
    ASSERT_EQ(::chown((d / "p.env").c_str(), 65534, 65534), 0) << std::strerror(errno);
    auto other = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env);
    EXPECT_EQ(other.code, 2) << other.out << other.err;
    EXPECT_NE(other.err.find("not by you"), std::string::npos) << other.err;
  }
}

TEST(SecretsChannels, EnvironmentAndPrecedence) {
  TempDir d;
  write_file(d / "rb.lua", kBook);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"},
                                         {"RUNBOOK_PARAM_TOKEN", "from-env-123"},
                                         {"RUNBOOK_PARAM_WHO", "envwho"}};
  auto r = run_cli({"exec", d / "rb.lua"}, env);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("hello envwho token length 12"), std::string::npos) << r.out;
  // file over environment, -p over file
  write_file(d / "p.env", "who=filewho\n");
  ::chmod((d / "p.env").c_str(), 0600);
  r = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env);
  EXPECT_NE(r.out.find("hello filewho"), std::string::npos) << r.out;
  r = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env", "-p", "who=argvwho"}, env);
  EXPECT_NE(r.out.find("hello argvwho"), std::string::npos) << r.out;
  // a dry-run takes the channels too
  r = run_cli({"exec", "--dry-run", d / "rb.lua"}, env);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(SecretsChannels, ArgvSecretWarns) {
  TempDir d;
  write_file(d / "rb.lua", kBook);
  auto r = run_cli({"exec", d / "rb.lua", "-p", "token=argv-secret-1"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("every user of this machine can read a command line"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("RUNBOOK_PARAM_TOKEN"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("argv-secret-1"), std::string::npos) << r.err;
}

TEST(SecretsChannels, StateIsPrivateWhateverTheUmask) {
  TempDir d;
  write_file(d / "rb.lua", R"(
runbook{ name = "art", version = "1.0.0" }
step("a", function() time.now() end)
)");
  mode_t old = ::umask(0);
  auto r = run_cli({"exec", d / "rb.lua"}, {{"XDG_STATE_HOME", d / "state"}, {"RUNBOOK_JOURNAL", ""}});
  ::umask(old);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(mode_of(d / "state/runbook"), 0700u);
  EXPECT_EQ(mode_of(d / "state/runbook/journal.db"), 0600u);
  struct stat sb {};
  if (::stat((d / "state/runbook/journal.db-wal").c_str(), &sb) == 0) {
    EXPECT_EQ(sb.st_mode & 0777, 0600u);
  }

  // An existing journal left world-readable is tightened.
  ::chmod((d / "state/runbook/journal.db").c_str(), 0644);
  ::chmod((d / "state/runbook").c_str(), 0755);
  r = run_cli({"runs"}, {{"XDG_STATE_HOME", d / "state"}, {"RUNBOOK_JOURNAL", ""}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(mode_of(d / "state/runbook/journal.db"), 0600u);
  EXPECT_EQ(mode_of(d / "state/runbook"), 0700u);
}

TEST(SecretsChannels, ResumeTakesTheSecretFromEnvOrFileAndRefusesWithout) {
  TempDir d;
  write_file(d / "rb.lua", kBook);
  write_file(d / "p.env", "token=resume-secret-777\n");
  ::chmod((d / "p.env").c_str(), 0600);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}, {"RUNBOOK_CRASH_AT", "done:1"}};
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env).code, 128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  auto refused = run_cli({"resume", "last"}, env);
  EXPECT_EQ(refused.code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("'token' is secret"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--param-file"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("RUNBOOK_PARAM_TOKEN"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("resume-secret-777"), std::string::npos) << refused.err;
  // given by the environment: not a parameter change
  auto env2 = env;
  env2["RUNBOOK_PARAM_TOKEN"] = "resume-secret-777";
  auto ok = run_cli({"resume", "last"}, env2);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.err.find("differ"), std::string::npos) << ok.err;

  // once more, given by the file
  env["RUNBOOK_CRASH_AT"] = "done:1";
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env).code, 128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  ok = run_cli({"resume", "last", "--param-file", d / "p.env"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(journal_text(d).find("resume-secret-777"), std::string::npos);
}

TEST(SecretsChannels, PromptWithoutEchoOnATerminal) {
  TempDir d;
  write_file(d / "rb.lua", kBook);
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (d / "j.db").c_str(), 1);
    ::unsetenv("RUNBOOK_PARAM_TOKEN");
    ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", "--no-color", (d / "rb.lua").c_str(), (char*)nullptr);
    ::_exit(127);
  }
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto read_some = [&] {
    char buf[4096];
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(master, &fds);
    timeval tv{0, 100000};
    if (::select(master + 1, &fds, nullptr, nullptr, &tv) > 0) {
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) seen.append(buf, static_cast<size_t>(n));
      return n > 0;
    }
    return true;
  };
  while (seen.find("not echoed") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    if (!read_some()) break;
  ASSERT_NE(seen.find("token (secret, not echoed)"), std::string::npos) << seen;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string answer = "typed-secret-42\n";
  ASSERT_EQ(::write(master, answer.data(), answer.size()), static_cast<ssize_t>(answer.size()));
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!read_some()) break;
    if (::waitpid(pid, &status, WNOHANG) == pid) { pid = 0; break; }
  }
  if (pid) { ::kill(pid, SIGKILL); ::waitpid(pid, &status, 0); }
  while (read_some() && seen.size() < 1 << 20) {
    fd_set fds; FD_ZERO(&fds); FD_SET(master, &fds); timeval tv{0, 0};
    if (::select(master + 1, &fds, nullptr, nullptr, &tv) <= 0) break;
  }
  ::close(master);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  EXPECT_EQ(seen.find("typed-secret-42"), std::string::npos) << seen;  // not echoed
  EXPECT_NE(seen.find("token length 15"), std::string::npos) << seen;
}

#include "support/redis_server.h"

// A secret URL keeps its host visible: only the password is masked, in the output, `show`, the
// report and the journal; a replay of the run is answered from the journal without the secret.
TEST(SecretsChannels, SecretUrlShowsItsHostAndReplays) {
  TempDir d;
  RedisServer redis("redis-pw-5150");
  write_file(d / "rb.lua", R"(
runbook{ name = "rs", version = "1.0.0", params = {
  url = { type = "url", secret = true, required = true } } }
step("set", function(p)
  redis.set(p.url, "k", "v")
  log.info("using " .. p.url)
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"},
                                         {"RUNBOOK_PARAM_URL", redis.url(0, ":redis-pw-5150")}};
  auto r = run_cli({"exec", d / "rb.lua"}, env);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  RedisClient client(redis.port(), "redis-pw-5150");
  std::string masked = "redis://:***@127.0.0.1:" + std::to_string(redis.port()) + "/0";
  EXPECT_NE(r.out.find(masked), std::string::npos) << r.out;
  auto show = run_cli({"show", "last"}, env);
  EXPECT_NE(show.out.find(masked), std::string::npos) << show.out;
  auto report = run_cli({"report", "last"}, env);
  EXPECT_NE(report.out.find(masked), std::string::npos) << report.out;
  for (const auto* s : {&r.out, &r.err, &show.out, &report.out})
    EXPECT_EQ(s->find("redis-pw-5150"), std::string::npos) << *s;
  EXPECT_EQ(journal_text(d).find("redis-pw-5150"), std::string::npos);
  auto env_no_secret = env;
  env_no_secret.erase("RUNBOOK_PARAM_URL");
  auto replay = run_cli({"replay", "last"}, env_no_secret);
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(replay.out.find("diverge"), std::string::npos) << replay.out;
  EXPECT_EQ(replay.out.find("redis-pw-5150"), std::string::npos) << replay.out;
}
