// End to end through the binary: exit codes, output, --json, errors as file:line.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "support/support.h"

using namespace rb::test;

namespace {

const char* kConfigRollback = R"(
runbook {
  name = "config-rollback",
  version = "1.0.0",
  summary = "Restore the config directory from the newest backup",
  params = {
    root  = { type = "path", required = true, doc = "application root" },
    url   = { type = "url", default = "http://127.0.0.1:8080/health" },
    token = { type = "string", secret = true, default = "" },
    tries = { type = "int", default = 3 },
  },
}

step("Back up the current config", function(p)
  local dir = fs.backup(p.root .. "/config")
  log.info("backup at " .. dir)
end)

step{ "Notify the flag service", timeout = "30s", retries = 2, run = function(p)
  local r = http.post{ url = p.url, json = { flag_name = "x", enabled = false },
                       headers = { Authorization = "Bearer " .. p.token } }
  assert(r.status == 200)
end }

step("Restart", function(p)
  exec{ "true", timeout = "20s" }
  http.wait_healthy{ url = p.url, timeout = "10s" }
end)
)";

struct Env {
  TempDir dir;
  std::map<std::string, std::string> env() const { return {{"RUNBOOK_JOURNAL", dir / "journal.db"}}; }
};

}  // namespace

TEST(Cli, IssueExampleRunsLiveAndKeepsTheSecretOutOfEverything) {
  Env e;
  HttpServer server(e.dir / "srv");
  write_file(e.dir / "app/config/app.ini", "a=1\n");
  write_file(e.dir / "rb.lua", kConfigRollback);
  auto r = run_cli({"exec", e.dir / "rb.lua", "-p", "root=" + e.dir / "app", "-p",
                    "url=" + server.url("/health"), "-p", "token=s3cr3t-t0ken"},
                   e.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("step 2/3  Notify the flag service"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("✓ succeeded"), std::string::npos);
  EXPECT_EQ(server.changing_requests(), 1);
  // The server saw the real token; nothing we wrote did.
  EXPECT_NE(read_file(e.dir / "srv/requests.log").find("Bearer s3cr3t-t0ken"), std::string::npos);
  EXPECT_EQ(r.out.find("s3cr3t-t0ken"), std::string::npos);
  auto show = run_cli({"show", "last", "--json"}, e.env());
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_EQ(show.out.find("s3cr3t-t0ken"), std::string::npos);
  EXPECT_NE(show.out.find("Bearer ***"), std::string::npos);
  EXPECT_EQ(read_file(e.dir / "journal.db").find("s3cr3t-t0ken"), std::string::npos);
}

TEST(Cli, DryRunChangesNothingAndShowsThePlan) {
  Env e;
  HttpServer server(e.dir / "srv");
  server.set_status(503);
  write_file(e.dir / "app/config/app.ini", "a=1\n");
  write_file(e.dir / "rb.lua", kConfigRollback);
  std::string before = sha256_tree(e.dir / "app");
  auto r = run_cli({"exec", e.dir / "rb.lua", "--dry-run", "-p", "root=" + e.dir / "app", "-p",
                    "url=" + server.url("/health")},
                   e.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(sha256_tree(e.dir / "app"), before);
  EXPECT_EQ(server.changing_requests(), 0);
  EXPECT_NE(r.out.find("~ fs.backup"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("now: 503"), std::string::npos) << r.out;  // the wait's preview probed once
  EXPECT_NE(r.out.find("nothing was changed"), std::string::npos);
}

TEST(Cli, MissingAndMalformedParamsAreListedTogetherWithExit2) {
  Env e;
  write_file(e.dir / "rb.lua", kConfigRollback);
  auto r = run_cli({"exec", e.dir / "rb.lua", "-p", "tries=many", "-p", "bogus=1"}, e.env());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("missing required parameter 'root'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("parameter 'tries' must be an integer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown parameter 'bogus'"), std::string::npos) << r.err;
  // The journal says so too.
  auto runs = run_cli({"runs", "--json"}, e.env());
  EXPECT_NE(runs.out.find("\"outcome\":\"error\""), std::string::npos) << runs.out;
}

TEST(Cli, SyntaxErrorNamesFileAndLine) {
  Env e;
  write_file(e.dir / "bad.lua", "runbook { name = 'x', version = '1.0.0' }\n\nstep('a', function()\n  local x = = 1\nend)\n");
  auto r = run_cli({"exec", e.dir / "bad.lua"}, e.env());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad.lua:4:"), std::string::npos) << r.err;
}

TEST(Cli, FailingEffectExits1AndNamesTheEffectAndLine) {
  Env e;
  write_file(e.dir / "f.lua", R"(runbook { name = "f", version = "1.0.0" }
step("one", function() exec{ "sh", "-c", "echo boom >&2; exit 3" } end)
step("two", function() log.info("never") end)
)");
  auto r = run_cli({"exec", e.dir / "f.lua"}, e.env());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("f.lua:2:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exec: 'sh' exited 3: boom"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(skipped)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("never"), std::string::npos);
}

TEST(Cli, JsonPrintsOneEventPerLine) {
  Env e;
  write_file(e.dir / "j.lua", R"(runbook { name = "j", version = "1.0.0" }
step("one", function() fs.exists("/") end)
)");
  auto r = run_cli({"exec", e.dir / "j.lua", "--json"}, e.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto ev = r.events();
  ASSERT_GE(ev.size(), 4u) << r.out;
  EXPECT_EQ(ev.front()["type"], "run_begin");
  EXPECT_EQ(ev.back()["type"], "run_end");
  EXPECT_EQ(ev.back()["outcome"], "succeeded");
  bool saw_effect = false;
  for (auto& j : ev)
    if (j["type"] == "effect" && j["name"] == "fs.exists") saw_effect = j["result"] == true;
  EXPECT_TRUE(saw_effect);
}

TEST(Cli, RunsAndShowListTheJournal) {
  Env e;
  write_file(e.dir / "j.lua", R"(runbook { name = "listed", version = "2.1.0" }
step("one", function() log.info("hello from the step") end)
)");
  ASSERT_EQ(run_cli({"exec", e.dir / "j.lua"}, e.env()).code, 0);
  ASSERT_EQ(run_cli({"exec", e.dir / "j.lua", "--dry-run"}, e.env()).code, 0);
  auto runs = run_cli({"runs"}, e.env());
  EXPECT_NE(runs.out.find("listed"), std::string::npos) << runs.out;
  EXPECT_NE(runs.out.find("2.1.0"), std::string::npos);
  EXPECT_NE(runs.out.find("dry-run"), std::string::npos);
  auto show = run_cli({"show", "1"}, e.env());
  EXPECT_EQ(show.code, 0);
  EXPECT_NE(show.out.find("hello from the step"), std::string::npos) << show.out;
  EXPECT_EQ(run_cli({"show", "99"}, e.env()).code, 2);
}

TEST(Cli, ApiListsEveryPrimitiveWithKind) {
  auto r = run_cli({"api"});
  ASSERT_EQ(r.code, 0);
  for (const char* name : {"exec{ ... }", "fs.backup(path, dir)", "http.wait_healthy(url)", "confirm(question)"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
  EXPECT_NE(r.out.find("[change, by arguments]"), std::string::npos);
}

TEST(Cli, ConfirmWithoutTerminalFailsUnlessYes) {
  Env e;
  write_file(e.dir / "c.lua", R"(runbook { name = "c", version = "1.0.0" }
step("ask", function() confirm("Flush the cache?") log.info("went on") end)
)");
  auto no = run_cli({"exec", e.dir / "c.lua"}, e.env());
  EXPECT_EQ(no.code, 1);
  EXPECT_NE(no.out.find("--yes"), std::string::npos) << no.out;
  auto yes = run_cli({"exec", e.dir / "c.lua", "--yes"}, e.env());
  EXPECT_EQ(yes.code, 0) << yes.out;
  EXPECT_NE(yes.out.find("went on"), std::string::npos);
}

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

TEST(Cli, CtrlCStopsAtTheNextSafePointExits130AndJournalsInterrupted) {
  Env e;
  write_file(e.dir / "long.lua", R"(runbook { name = "long", version = "1.0.0" }
step("wait a long time", function() sleep("30s") end)
step("never", function() log.info("never reached") end)
)");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (e.dir / "journal.db").c_str(), 1);
    int fd = ::open((e.dir / "out.txt").c_str(), O_WRONLY | O_CREAT, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", (e.dir / "long.lua").c_str(), nullptr);
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_file(e.dir / "out.txt");
  auto runs = run_cli({"runs", "--json"}, e.env());
  EXPECT_NE(runs.out.find("\"outcome\":\"interrupted\""), std::string::npos) << runs.out;
  EXPECT_EQ(read_file(e.dir / "out.txt").find("never reached"), std::string::npos);
}

// A password written into an ordinary parameter (a URL's userinfo, a key=value DSN) is redacted
// like a declared secret: not in the output, the --json events, or any file of the journal.
TEST(Cli, PasswordsInsideParameterUrlsAndDsnsAreRedacted) {
  TempDir d;
  std::string file = d / "pw.lua";
  write_file(file, R"(
runbook { name = "pw", version = "1.0.0",
  params = { url = { type = "url", required = true },
             dsn = { type = "string", default = "host=127.0.0.1 password=s3cr3tDSNpw dbname=app" } } }
step("show", function(p) log.info("url " .. p.url .. " dsn " .. p.dsn); env.get(p.url) end)
)");
  std::string j = d / "journal/j.db";
  for (bool as_json : {false, true}) {
    std::vector<std::string> args = {"exec", file, "-p", "url=redis://:hunter2pw@127.0.0.1:1/0", "--journal", j};
    if (as_json) args.push_back("--json");
    auto r = run_cli(args);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("hunter2pw"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("s3cr3tDSNpw"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("redis://:***@127.0.0.1"), std::string::npos) << r.out;
  }
  auto show = run_cli({"show", "last", "--json", "--journal", j});
  EXPECT_EQ(show.out.find("hunter2pw"), std::string::npos);
  EXPECT_EQ(files_containing(d / "journal", "hunter2pw"), std::vector<std::string>{});
  EXPECT_EQ(files_containing(d / "journal", "s3cr3tDSNpw"), std::vector<std::string>{});
}

// A failure the runbook takes on itself (check = false) is marked "!", not "✗", so nobody reading
// the output at 3 a.m. mistakes it for what stopped the run; --json says handled.
TEST(Cli, AFailureTakenWithCheckFalseIsMarkedHandled) {
  TempDir d;
  std::string file = d / "handled.lua";
  write_file(file, R"(
runbook { name = "handled", version = "1.0.0" }
step("probe", function()
  local r = exec{ "false", check = false }
  log.info("exit " .. r.code)
end)
)");
  auto r = run_cli({"exec", file, "--journal", d / "j.db"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("  ! exec"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("✗"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check = false"), std::string::npos) << r.out;
  auto j = run_cli({"exec", file, "--journal", d / "j.db", "--json"});
  bool handled = false;
  for (const auto& e : j.events())
    if (e.value("type", "") == "effect" && e.value("name", "") == "exec") handled = e.value("handled", false);
  EXPECT_TRUE(handled) << j.out;
}

// fs.read{ secret = true }: the runbook gets the file whole; the journal, the output and --json
// get it redacted, with the values of its secret-named keys. fs.write{ secret = true } likewise.
TEST(Cli, SecretFileContentStaysOutOfJournalAndOutput) {
  TempDir d;
  write_file(d / "app/.env", "PORT=8080\nDB_PASSWORD=pa55-w0rd-xyz\n");
  std::string file = d / "envs.lua";
  write_file(file, R"~(
runbook { name = "envs", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("read and rewrite", function(p)
  local text = fs.read{ path = p.root .. "/.env", secret = true }
  local pw = text:match("DB_PASSWORD=(%S+)")
  assert(pw == "pa55-w0rd-xyz", "the runbook gets the real content")
  log.info("password is " .. pw .. ", port line kept: " .. tostring(text:find("PORT=8080") ~= nil))
  fs.write{ path = p.root .. "/.env.new", content = text .. "API_TOKEN=tok-98765-abc\n", secret = true }
end)
)~");
  std::string j = d / "journal/j.db";
  for (bool as_json : {false, true}) {
    std::vector<std::string> args = {"exec", file, "-p", "root=" + d / "app", "--journal", j};
    if (as_json) args.push_back("--json");
    auto r = run_cli(args);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("pa55-w0rd-xyz"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("tok-98765-abc"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("port line kept: true"), std::string::npos) << r.out;
  }
  EXPECT_NE(read_file(d / "app/.env.new").find("API_TOKEN=tok-98765-abc"), std::string::npos);
  EXPECT_EQ(files_containing(d / "journal", "pa55-w0rd-xyz", "artifacts"), std::vector<std::string>{});
  EXPECT_EQ(files_containing(d / "journal", "tok-98765-abc", "artifacts"), std::vector<std::string>{});
}

namespace {
// A command's standard output, trailing newline dropped.
std::string output_of(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  ::pclose(f);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}
}  // namespace

// What a bug report needs: the version, the commit it was built from and the libraries it runs
// with, as pkg-config (the -dev packages it was built against) and git say.
TEST(Cli, VersionNamesTheCommitItWasBuiltFromAndTheLibrariesItRunsWith) {
  auto r = run_cli({"--version"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[0], m, std::regex(R"(runbook (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12})(-dirty)?\))")))
      << lines[0];
  const std::string src = RUNBOOK_SOURCE_DIR;
  std::string head = output_of("git -C '" + src + "' rev-parse HEAD");
  ASSERT_EQ(head.size(), 40u) << head;
  EXPECT_EQ(m[2].str(), head.substr(0, 12)) << "built from another commit than HEAD: rebuild";
  bool dirty = std::system(("git -C '" + src + "' update-index -q --refresh >/dev/null 2>&1; git -C '" + src +
                            "' diff-index --quiet HEAD --").c_str()) != 0;
  EXPECT_EQ(m[3].matched, dirty) << lines[0];
  auto modversion = [](const std::string& pkg) { return output_of("pkg-config --modversion " + pkg); };
  EXPECT_EQ(lines[1], "Lua " + modversion("lua5.4"));
  EXPECT_EQ(lines[2], "SQLite " + modversion("sqlite3"));
  EXPECT_EQ(lines[3], "libcurl " + modversion("libcurl"));
  EXPECT_EQ(lines[4], "libgit2 " + modversion("libgit2"));
  EXPECT_EQ(lines[5], "libpq " + modversion("libpq"));
  EXPECT_EQ(lines[6], "hiredis " + modversion("hiredis"));
}
