// `runbook resume` the hard way: a live runbook doing real work (files, a git repository through
// exec, an HTTP service that counts the requests that change things) is killed with SIGKILL at
// every effect boundary in turn and in the middle of a long effect; each time `runbook resume`
// finishes it. The world must end as an uninterrupted run leaves it, and no completed change may
// have been made twice — counted in the world (requests received, lines appended, commits), not
// only in the journal.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/strings.h"
#include "journal/journal.h"
#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

const char* kCrashy = R"(
runbook {
  name = "crashy",
  version = "1.0.0",
  params = {
    root = { type = "path", required = true },
    url  = { type = "url", required = true },
    nap  = { type = "string", default = "0" },
  },
}

-- Fixed identities and dates: the same rollback commit has the same id in every run.
local GIT_ENV = {
  GIT_AUTHOR_NAME = "Ops", GIT_AUTHOR_EMAIL = "ops@example.com",
  GIT_AUTHOR_DATE = "2024-01-01T00:00:00Z", GIT_COMMITTER_NAME = "Ops",
  GIT_COMMITTER_EMAIL = "ops@example.com", GIT_COMMITTER_DATE = "2024-01-01T00:00:00Z",
}

local function git(p, args)
  local argv = { "git", "-C", p.root .. "/repo" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.env = GIT_ENV
  return exec(argv)
end

step("Prepare", function(p)
  fs.mkdir(p.root .. "/app")
  fs.write(p.root .. "/app/config.txt", "version=2\n")
  exec{ "git", "init", "-q", p.root .. "/repo" }
end)

step("Commit the rollback", function(p)
  fs.write(p.root .. "/repo/file.txt", "rolled back to 1.4.2\n")
  git(p, { "add", "file.txt" })
  git(p, { "commit", "-q", "-m", "Roll back to 1.4.2" })
end)

step("Tell the flag service", function(p)
  local r = http.post{ url = p.url .. "/flags", json = { flag = "checkout", enabled = false } }
  local audit = fs.read(p.root .. "/audit.log")
  -- r.ok, not r.status: after --assume-done the status is unknown (nothing recorded it).
  fs.write(p.root .. "/audit.log", audit .. "flag off, ok " .. tostring(r.ok) .. "\n")
end)

step("Settle", function(p)
  http.get{ url = p.url .. "/health" }
  exec{ "sleep", p.nap }
  fs.copy(p.root .. "/app/config.txt", p.root .. "/app/config.bak")
  fs.remove(p.root .. "/app/config.txt")
  http.post{ url = p.url .. "/done", json = { ok = true } }
end)
)";

std::string git_out(const std::string& repo, std::vector<std::string> args) {
  os::ProcessSpec spec;
  spec.argv = {"git", "-C", repo};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  auto r = os::run_process(spec);
  return trim(r.stdout_text);
}

// What an operator would check after the rollback, each thing in the world.
struct Outcome {
  std::string app_tree, file_txt, audit, head, commits;
  int flag_posts = 0, done_posts = 0;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& o, const Outcome& x) {
  return o << "{app " << x.app_tree.substr(0, 12) << ", file.txt '" << x.file_txt << "', audit '"
           << x.audit << "', head " << x.head.substr(0, 12) << ", commits " << x.commits
           << ", POST /flags x" << x.flag_posts << ", POST /done x" << x.done_posts << "}";
}

class Case {
 public:
  Case(const HttpServer& server, const std::string& name) : server_(server), name_(name) {
    write_file(dir_ / "rb.lua", kCrashy);
    write_file(root() + "/audit.log", "audit log\n");
  }
  std::string root() const { return dir_ / "root"; }
  std::string journal() const { return dir_ / "journal.db"; }
  std::map<std::string, std::string> env(const std::string& crash = "") const {
    std::map<std::string, std::string> e{{"RUNBOOK_JOURNAL", journal()}};
    if (!crash.empty()) e["RUNBOOK_CRASH_AT"] = crash;
    return e;
  }
  std::vector<std::string> exec_args(const std::string& nap = "0") const {
    return {"exec", dir_ / "rb.lua", "-p", "root=" + root(), "-p", "url=" + server_.url("/" + name_),
            "-p", "nap=" + nap};
  }
  Outcome outcome() const {
    Outcome o;
    o.app_tree = sha256_tree(root() + "/app");
    o.file_txt = read_file(root() + "/repo/file.txt");
    o.audit = read_file(root() + "/audit.log");
    o.head = git_out(root() + "/repo", {"rev-parse", "HEAD"});
    o.commits = git_out(root() + "/repo", {"rev-list", "--count", "HEAD"});
    for (const auto& line : split(read_file(server_dir() + "/requests.log"), '\n')) {
      o.flag_posts += line.find("\"/" + name_ + "/flags\"") != std::string::npos;
      o.done_posts += line.find("\"/" + name_ + "/done\"") != std::string::npos;
    }
    return o;
  }
  std::string server_dir() const { return server_dir_; }
  static void set_server_dir(const std::string& d) { server_dir_ = d; }

 private:
  const HttpServer& server_;
  std::string name_;
  TempDir dir_;
  static inline std::string server_dir_;
};

struct EffectInfo {
  std::string name, kind;
};

// The reference: an uninterrupted run.
std::vector<EffectInfo> reference_effects(const HttpServer& server, Outcome* out) {
  Case c(server, "reference");
  auto args = c.exec_args();
  args.push_back("--json");
  auto r = run_cli(args, c.env());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  std::vector<EffectInfo> effects;
  for (const auto& e : r.events())
    if (e.value("type", "") == "effect")
      effects.push_back({e["name"].get<std::string>(), e["kind"].get<std::string>()});
  *out = c.outcome();
  return effects;
}

// Nothing in the world can tell whether these took place: resume must stop and ask.
bool cannot_verify(const EffectInfo& e) {
  return e.kind == "change" && (e.name == "exec" || e.name.rfind("http.", 0) == 0);
}

RunRecord run_row(const std::string& journal, int64_t id) {
  Journal j(journal);
  return *j.run(id);
}

}  // namespace

TEST(Resume, SigkillAtEveryEffectBoundaryThenResumeEndsAsAnUninterruptedRun) {
  TempDir sdir;
  HttpServer server(sdir / "srv");
  Case::set_server_dir(sdir / "srv");
  Outcome want;
  auto effects = reference_effects(server, &want);
  ASSERT_EQ(effects.size(), 14u);
  ASSERT_EQ(want.flag_posts, 1);
  ASSERT_EQ(want.commits, "1");
  ASSERT_EQ(want.audit, "audit log\nflag off, ok true\n");

  int asked = 0, verified = 0;
  for (size_t k = 1; k <= effects.size(); ++k) {
    for (const char* when : {"before", "after", "done"}) {
      std::string point = std::string(when) + ":" + std::to_string(k);
      SCOPED_TRACE(point + " (" + effects[k - 1].name + ")");
      Case c(server, "c" + std::to_string(k) + when);
      auto crashed = run_cli(c.exec_args(), c.env(point));
      ASSERT_EQ(crashed.code, 128 + SIGKILL) << crashed.out << crashed.err;
      EXPECT_EQ(run_row(c.journal(), 1).outcome, "running");

      bool in_doubt = std::string(when) != "done" && cannot_verify(effects[k - 1]);
      auto resumed = run_cli({"resume", "1"}, c.env());
      if (in_doubt) {
        // It stops, names the effect and its arguments, and offers the two choices.
        ASSERT_EQ(resumed.code, 3) << resumed.out << resumed.err;
        std::string all = resumed.out + resumed.err;
        EXPECT_NE(all.find("effect #" + std::to_string(k) + " " + effects[k - 1].name), std::string::npos) << all;
        EXPECT_NE(all.find("args: {"), std::string::npos) << all;
        EXPECT_NE(all.find("--assume-done"), std::string::npos) << all;
        EXPECT_NE(all.find("--redo"), std::string::npos) << all;
        ++asked;
        // The operator looks and answers truthfully: before it acted, redo; after, it is done.
        resumed = run_cli({"resume", "1", std::string(when) == "before" ? "--redo" : "--assume-done"},
                          c.env());
      }
      ASSERT_EQ(resumed.code, 0) << resumed.out << resumed.err;
      EXPECT_EQ(c.outcome(), want);

      // The journal links them: the original is marked crashed and resumed.
      RunRecord original = run_row(c.journal(), 1);
      EXPECT_EQ(original.outcome, "crashed");
      EXPECT_NE(original.resumed_by, 0);
      Journal j(c.journal());
      auto last = *j.run(*j.last_run_id());
      EXPECT_EQ(last.mode, "resume");
      EXPECT_EQ(last.outcome, "succeeded");
      if (std::string(when) != "done" && effects[k - 1].kind == "change" && !in_doubt) {
        auto es = j.effects(last.id);
        ASSERT_GE(es.size(), k);
        EXPECT_EQ(es[k - 1].origin, std::string(when) == "after" ? "verified" : "redone");
        verified += es[k - 1].origin == "verified";
      }
    }
  }
  EXPECT_GE(asked, 12);    // exec x5, http.post x2, each before and after
  EXPECT_GE(verified, 6);  // fs.mkdir, fs.write x3, fs.copy, fs.remove after they acted
}

TEST(Resume, KilledInTheMiddleOfALongEffect) {
  TempDir sdir;
  HttpServer server(sdir / "srv");
  Case::set_server_dir(sdir / "srv");
  Outcome want;
  reference_effects(server, &want);

  Case c(server, "middle");
  auto args = c.exec_args("5");
  args.insert(args.begin(), RUNBOOK_BIN);
  auto env = c.env();
  {
    Child runbook(args, env, c.root() + ".log");
    // Wait until the 5 s `sleep` has begun, then pull the plug halfway through.
    bool begun = false;
    for (int i = 0; i < 200 && !begun; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      if (!std::filesystem::exists(c.journal())) continue;
      Journal j(c.journal());
      for (const auto& e : j.effects(1))
        begun = begun || (e.name == "exec" && e.args["argv"][0] == "sleep" && e.state == "begun");
    }
    ASSERT_TRUE(begun) << read_file(c.root() + ".log");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ASSERT_EQ(::kill(runbook.pid(), SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(runbook.pid(), &status, 0), runbook.pid());
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  EXPECT_EQ(c.outcome().done_posts, 0);

  auto first = run_cli({"resume", "last"}, c.env());
  ASSERT_EQ(first.code, 3) << first.out << first.err;  // a change in doubt
  EXPECT_NE((first.out + first.err).find("\"sleep\""), std::string::npos) << first.err;
  auto t0 = std::chrono::steady_clock::now();
  auto second = run_cli({"resume", "last", "--redo"}, c.env());
  ASSERT_EQ(second.code, 0) << second.out << second.err;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(4900)) << "redone: slept again";
  EXPECT_EQ(c.outcome(), want);
}

TEST(Resume, AFailedRunContinuesAfterTheFixWithoutRedoingWhatCompleted) {
  TempDir sdir;
  HttpServer server(sdir / "srv");
  Case::set_server_dir(sdir / "srv");
  Outcome want;
  reference_effects(server, &want);

  Case c(server, "failed");
  write_file(sdir / "srv/post_status", "503");
  auto failed = run_cli(c.exec_args(), c.env());
  ASSERT_EQ(failed.code, 1) << failed.out;
  std::filesystem::remove(sdir / "srv/post_status");  // the flag service is back

  auto resumed = run_cli({"resume", "last"}, c.env());
  ASSERT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("effects #1–#6 are answered from the journal; live from effect #7"),
            std::string::npos) << resumed.out;
  Outcome got = c.outcome();
  EXPECT_EQ(got.flag_posts, 2) << "the refused POST, then the one that worked";
  got.flag_posts = 1;
  EXPECT_EQ(got, want);

  Journal j(c.journal());
  auto original = *j.run(1);
  EXPECT_EQ(original.outcome, "failed");
  EXPECT_EQ(original.resumed_by, 2);
  auto cont = *j.run(2);
  EXPECT_EQ(cont.parent_id, 1);
  EXPECT_EQ(cont.mode, "resume");
  auto es = j.effects(2);
  ASSERT_EQ(es.size(), 14u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(es[i].origin, "journal") << i;
    EXPECT_EQ(es[i].origin_run, 1) << i;
  }
  EXPECT_EQ(es[6].origin, "");

  // Nothing left to resume; and a replay of the continuation tells the same story.
  EXPECT_EQ(run_cli({"resume", "2"}, c.env()).code, 2);
  auto replay = run_cli({"replay", "2"}, c.env());
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(c.outcome().flag_posts, 2);
}

TEST(Resume, ChangedParametersAreRefusedUnlessAllowedAndThenJournaled) {
  TempDir sdir;
  HttpServer server(sdir / "srv");
  Case::set_server_dir(sdir / "srv");
  Case c(server, "params");
  ASSERT_EQ(run_cli(c.exec_args(), c.env("done:7")).code, 128 + SIGKILL);

  auto refused = run_cli({"resume", "1", "-p", "nap=1"}, c.env());
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("nap: \"0\" then, \"1\" now"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--allow-param-change"), std::string::npos);
  EXPECT_EQ(c.outcome().done_posts, 0);

  auto allowed = run_cli({"resume", "1", "-p", "nap=1", "--allow-param-change"}, c.env());
  ASSERT_EQ(allowed.code, 0) << allowed.out << allowed.err;
  EXPECT_NE(allowed.out.find("resumed with changed parameters"), std::string::npos) << allowed.out;
  Journal j(c.journal());
  auto last = *j.run(*j.last_run_id());
  EXPECT_EQ(last.extra["param_changes"]["nap"]["from"], "0");
  EXPECT_EQ(last.extra["param_changes"]["nap"]["to"], "1");
  EXPECT_EQ(last.params["nap"], "1");
  EXPECT_EQ(c.outcome().flag_posts, 1);
}

TEST(Resume, SecretsAreAskedForAgainAndNeverJournaled) {
  TempDir d;
  HttpServer server(d / "srv");
  write_file(d / "rb.lua", R"(
runbook{ name = "secret", version = "1.0.0", params = {
  url = { type = "url", required = true }, token = { secret = true, required = true } } }
step("call", function(p)
  http.post{ url = p.url, headers = { Authorization = "Bearer " .. p.token }, json = { a = 1 } }
  log.info("posted with " .. p.token)
  time.now()
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}, {"RUNBOOK_CRASH_AT", "done:1"}};
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "-p", "url=" + server.url("/s"), "-p", "token=hunter2-xyz"}, env).code,
            128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  auto refused = run_cli({"resume", "last"}, env);
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("'token' is secret"), std::string::npos) << refused.err;
  auto ok = run_cli({"resume", "last", "-p", "token=hunter2-xyz"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(server.changing_requests(), 1);
  std::string db = read_file(d / "j.db") + read_file(d / "j.db-wal");
  EXPECT_EQ(db.find("hunter2-xyz"), std::string::npos);
}

TEST(Resume, RefusesWhatCannotBeResumed) {
  TempDir d;
  write_file(d / "rb.lua", R"(
runbook{ name = "ok", version = "1.0.0" }
step("a", function() time.now() end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}};
  ASSERT_EQ(run_cli({"exec", d / "rb.lua"}, env).code, 0);
  auto r = run_cli({"resume", "last"}, env);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("succeeded: there is nothing to resume"), std::string::npos) << r.err;
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "--dry-run"}, env).code, 0);
  r = run_cli({"resume", "last"}, env);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("only a live run can be resumed"), std::string::npos) << r.err;
  // A crashed run whose file was edited since: resuming would not run what ran.
  env["RUNBOOK_CRASH_AT"] = "before:1";
  ASSERT_EQ(run_cli({"exec", d / "rb.lua"}, env).code, 128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  write_file(d / "rb.lua", "-- edited\n" + read_file(d / "rb.lua"));
  r = run_cli({"resume", "last"}, env);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("has changed since run #3"), std::string::npos) << r.err;
}

// Journals written by the first release (schema 1) open, gain the new columns, and keep their runs.
TEST(Resume, SchemaOneJournalsAreMigrated) {
  TempDir d;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((d / "old.db").c_str(), &db), SQLITE_OK);
  const char* v1 = R"sql(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, parent_id INTEGER NOT NULL DEFAULT 0,
  runbook TEXT NOT NULL, version TEXT NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL,
  modules TEXT NOT NULL DEFAULT '{}', git_commit TEXT NOT NULL DEFAULT '',
  git_dirty INTEGER NOT NULL DEFAULT 0, params TEXT NOT NULL DEFAULT '{}',
  mode TEXT NOT NULL, offline INTEGER NOT NULL DEFAULT 0, host TEXT, user TEXT, cwd TEXT,
  seed INTEGER NOT NULL DEFAULT 0, started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', exit_code INTEGER NOT NULL DEFAULT -1,
  steps_total INTEGER NOT NULL DEFAULT 0, artifacts TEXT NOT NULL DEFAULT '',
  extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE steps(
  run_id INTEGER NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
  started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '', PRIMARY KEY(run_id, idx, attempt));
CREATE TABLE effects(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, step_idx INTEGER NOT NULL,
  attempt INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, args TEXT NOT NULL,
  describe TEXT NOT NULL, state TEXT NOT NULL, result TEXT, preview TEXT,
  error TEXT NOT NULL DEFAULT '', site TEXT NOT NULL DEFAULT '', started_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(run_id, seq));
CREATE TABLE logs(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, step_idx INTEGER NOT NULL, level TEXT NOT NULL,
  message TEXT NOT NULL, at_ms INTEGER NOT NULL);
INSERT INTO runs(runbook, version, file, sha256, mode, started_ms, ended_ms, outcome)
  VALUES('old-book', '0.9.0', '/x.lua', 'abc', 'live', 1000, 2000, 'failed');
INSERT INTO effects(run_id, seq, step_idx, attempt, name, kind, args, describe, state, started_ms)
  VALUES(1, 1, 1, 1, 'exec', 'change', '{"argv":["true"]}', 'run true', 'done', 1000);
PRAGMA user_version=1;
)sql";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  Journal j(d / "old.db");
  auto run = j.run(1);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->runbook, "old-book");
  EXPECT_EQ(run->resumed_by, 0);
  EXPECT_EQ(run->plan_id, "");
  auto es = j.effects(1);
  ASSERT_EQ(es.size(), 1u);
  EXPECT_EQ(es[0].origin, "");
  j.mark_resumed(1, 7);
  EXPECT_EQ(j.run(1)->resumed_by, 7);
  sqlite3_open((d / "old.db").c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), Journal::kSchemaVersion);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

// fs.backup's name holds the time, so its check looks for a backup made since the effect began
// with the source's content, and answers with its path: the runbook goes on with the real one.
TEST(Resume, ABackupInDoubtIsFoundNotMadeTwice) {
  for (const char* when : {"after", "before"}) {
    SCOPED_TRACE(when);
    TempDir d;
    write_file(d / "root/conf/app.ini", "a=1\n");
    write_file(d / "rb.lua", R"(
runbook{ name = "bk", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("back up", function(p)
  local b = fs.backup(p.root .. "/conf", p.root .. "/backups")
  fs.write(p.root .. "/where.txt", b)
end)
)");
    std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"},
                                           {"RUNBOOK_CRASH_AT", std::string(when) + ":1"}};
    std::filesystem::create_directories(d / "root/backups");
    ASSERT_EQ(run_cli({"exec", d / "rb.lua", "-p", "root=" + d / "root"}, env).code, 128 + SIGKILL);
    env.erase("RUNBOOK_CRASH_AT");
    auto r = run_cli({"resume", "last"}, env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    std::vector<std::string> backups;
    for (const auto& e : std::filesystem::directory_iterator(d / "root/backups")) backups.push_back(e.path());
    ASSERT_EQ(backups.size(), 1u);
    EXPECT_EQ(read_file(d / "root/where.txt"), backups[0]);
    EXPECT_EQ(read_file(backups[0] + "/app.ini"), "a=1\n");
    Journal j(d / "j.db");
    EXPECT_EQ(j.effects(2)[0].origin, std::string(when) == "after" ? "verified" : "redone");
  }
}
