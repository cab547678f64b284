// A saved plan refuses to execute over content that changed behind it (issue 9 C), for every
// change whose preview carries a basis other than fs.write's (tests/plan_exact_test.cc): a backup
// or copy source replaced, one more key matching a redis pattern, an UPDATE that would now touch
// another number of rows, a package at another version in the venv, a tag moved to another commit.
// Each through the real CLI: `exec F --dry-run --save-plan P`, change the world, `exec --plan P`
// exits 4 naming the change (name and describe, in stderr and in the --json "refused" event)
// with planned and now, and changes nothing; then, with the world put back as it was planned,
// the same plan executes (exit 0) and does what it showed.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/hash.h"
#include "support/redis_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string sh(const std::string& cmd) {
  std::string full = "(" + cmd + ") 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  std::string out;
  if (!f) {
    ADD_FAILURE() << "cannot run " << cmd;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// One runbook of one step (`body`), string parameters `params`, its journal and plan in a temp dir.
struct Planned {
  TempDir d;
  std::string file = d / "rb.lua";
  std::string journal = d / "journal.db";
  std::string plan = d / "plan.json";
  std::map<std::string, std::string> params;

  Planned(const std::string& body, std::map<std::string, std::string> p) : params(std::move(p)) {
    std::string decl;
    for (const auto& [k, _] : params) decl += "    " + k + " = { type = 'string', required = true },\n";
    write_file(file, "runbook {\n  name = 'drift',\n  version = '1.0.0',\n  params = {\n" + decl +
                         "  },\n}\n\nstep('Change', function(p)\n" + body + "\nend)\n");
  }
  CliResult save() const {
    std::vector<std::string> a{"exec", file, "--dry-run", "--save-plan", plan, "--journal", journal};
    for (const auto& [k, v] : params) a.insert(a.end(), {"-p", k + "=" + v});
    return run_cli(a);
  }
  CliResult execute(bool json_out = false) const {
    std::vector<std::string> a{"exec", "--plan", plan, "--journal", journal};
    if (json_out) a.push_back("--json");
    return run_cli(a);
  }
};

// `exec --plan` refuses with exit 4, naming the change `name` (`describe`) and showing what it
// acts on as planned (holding `planned`) and now (holding `now`), in the text and in --json.
void expect_drift(const Planned& p, const std::string& name, const std::string& describe,
                  const std::string& planned, const std::string& now) {
  auto r = p.execute();
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  std::string what = name + " (" + describe + "): what it acts on";
  size_t at = r.err.find(what);
  ASSERT_NE(at, std::string::npos) << "no drift of " << what << " in:\n" << r.err;
  // The lines under it: planned, then now.
  std::string entry = r.err.substr(at);
  size_t pl = entry.find("\n      planned: "), nw = entry.find("\n      now:     ");
  ASSERT_NE(pl, std::string::npos) << entry;
  ASSERT_NE(nw, std::string::npos) << entry;
  std::string planned_line = entry.substr(pl, nw - pl);
  std::string now_line = entry.substr(nw, entry.find('\n', nw + 1) - nw);
  EXPECT_TRUE(has(planned_line, planned)) << planned_line;
  EXPECT_TRUE(has(now_line, now)) << now_line;
  EXPECT_FALSE(has(planned_line, now)) << planned_line;

  auto j = p.execute(true);
  EXPECT_EQ(j.code, 4) << j.out << j.err;
  json refused;
  for (const auto& e : j.events())
    if (e.value("type", "") == "refused") refused = e;
  ASSERT_TRUE(refused.is_object()) << j.out;
  EXPECT_EQ(refused["reason"], "plan_drift");
  json found;
  for (const auto& d : refused["drift"])
    if (d.contains("effect") && d["effect"].value("name", "") == name) found = d;
  ASSERT_TRUE(found.is_object()) << refused.dump();
  EXPECT_EQ(found["effect"]["describe"], describe);
  EXPECT_TRUE(has(found["planned"].dump(), planned)) << found.dump();
  EXPECT_TRUE(has(found["now"].dump(), now)) << found.dump();
  EXPECT_NE(found["planned"], found["now"]);
}

// ---- fs ----------------------------------------------------------------------------------------

TEST(PlanDrift, ARestoreWhoseBackupWasReplacedIsRefused) {
  TempDir w;
  std::string backup = w / "config.ini.bak", target = w / "config.ini";
  write_file(backup, "v=1\n");
  write_file(target, "v=2\n");
  Planned p("  fs.restore(p.backup, p.target)\n", {{"backup", backup}, {"target", target}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  ASSERT_EQ(read_file(target), "v=2\n");  // the rehearsal changed nothing

  write_file(backup, "v=1\nbroken=1\n");  // someone replaced the backup
  expect_drift(p, "fs.restore", "restore " + target + " from " + backup,
               "\"source\":\"" + sha256_hex("v=1\n") + "\"", sha256_hex("v=1\nbroken=1\n"));
  EXPECT_EQ(read_file(target), "v=2\n");
  EXPECT_EQ(read_file(backup), "v=1\nbroken=1\n");

  write_file(backup, "v=1\n");  // back as planned: the same plan executes
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(target), "v=1\n");
}

TEST(PlanDrift, ACopyWhoseSourceTreeChangedIsRefused) {
  TempDir w;
  std::string src = w / "release", dest = w / "current";
  write_file(src + "/app.conf", "port=80\n");
  write_file(src + "/bin/run", "#!/bin/sh\n");
  write_file(dest + "/app.conf", "port=8080\n");
  Planned p("  fs.copy(p.src, p.dest)\n", {{"src", src}, {"dest", dest}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  json plan = json::parse(read_file(p.plan));
  ASSERT_EQ(plan["effects"].size(), 1u) << plan.dump();
  std::string planned_source = plan["effects"][0]["basis"]["source"];
  EXPECT_EQ(planned_source.rfind("D ", 0), 0u) << planned_source;  // a tree's digest

  write_file(src + "/bin/run", "#!/bin/sh\nrm -rf /\n");  // one file deep in the source replaced
  // What the source's digest is now: a plan made of the world as it is.
  Planned again("  fs.copy(p.src, p.dest)\n", {{"src", src}, {"dest", dest}});
  ASSERT_EQ(again.save().code, 0);
  std::string now_source = json::parse(read_file(again.plan))["effects"][0]["basis"]["source"];
  ASSERT_NE(now_source, planned_source);
  expect_drift(p, "fs.copy", "copy " + src + " → " + dest, "\"source\":\"" + planned_source + "\"",
               "\"source\":\"" + now_source + "\"");
  EXPECT_EQ(read_file(dest + "/app.conf"), "port=8080\n");
  EXPECT_FALSE(stdfs::exists(dest + "/bin"));

  write_file(src + "/bin/run", "#!/bin/sh\n");
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(dest + "/app.conf"), "port=80\n");
  EXPECT_EQ(read_file(dest + "/bin/run"), "#!/bin/sh\n");
}

// ---- redis -------------------------------------------------------------------------------------

using Redis = RedisClient;

TEST(PlanDrift, DeleteMatchingWithOneMoreMatchingKeyIsRefused) {
  RedisServer server;
  Redis c(server.port());
  for (int i = 0; i < 5; ++i) c.set("sess:" + std::to_string(i));
  for (int i = 0; i < 3; ++i) c.set("keep:" + std::to_string(i));
  Planned p("  redis.delete_matching(p.url, 'sess:*')\n", {{"url", server.url()}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  ASSERT_EQ(c.dbsize(), 8);

  c.set("sess:new");  // a session that logged in after planning
  expect_drift(p, "redis.delete_matching", "delete keys matching sess:* in " + server.url(),
               "\"count\":5", "\"count\":6");
  EXPECT_EQ(c.dbsize(), 9);  // nothing deleted
  EXPECT_EQ(c.exists("sess:0"), 1);
  EXPECT_EQ(c.exists("sess:new"), 1);

  c.integer({"DEL", "sess:new"});
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(c.dbsize(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.exists("keep:" + std::to_string(i)), 1);
}

TEST(PlanDrift, DeleteMatchingWithTheSameCountButAnotherKeyIsRefused) {
  // The count alone would miss it: one matching key gone, another come.
  RedisServer server;
  Redis c(server.port());
  for (int i = 0; i < 5; ++i) c.set("sess:" + std::to_string(i));
  Planned p("  redis.delete_matching(p.url, 'sess:*')\n", {{"url", server.url()}});
  ASSERT_EQ(p.save().code, 0);
  c.integer({"DEL", "sess:4"});
  c.set("sess:other");
  // The digest: sha256 of the sorted names, each ended by a NUL.
  auto digest = [](std::vector<std::string> keys) {
    std::sort(keys.begin(), keys.end());
    std::string acc;
    for (const auto& k : keys) acc.append(k).push_back('\0');
    return sha256_hex(acc);
  };
  std::string planned = digest({"sess:0", "sess:1", "sess:2", "sess:3", "sess:4"});
  std::string now = digest({"sess:0", "sess:1", "sess:2", "sess:3", "sess:other"});
  expect_drift(p, "redis.delete_matching", "delete keys matching sess:* in " + server.url(),
               "{\"count\":5,\"digest\":\"" + planned + "\"}", "{\"count\":5,\"digest\":\"" + now + "\"}");
  EXPECT_EQ(c.dbsize(), 5);
  EXPECT_EQ(c.exists("sess:other"), 1);
  EXPECT_EQ(c.exists("sess:0"), 1);
}

// ---- sqlite ------------------------------------------------------------------------------------

void sql(const std::string& db, const std::string& statements) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, statements.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << "\n" << statements;
  sqlite3_free(err);
  sqlite3_close(h);
}

int64_t count(const std::string& db, const std::string& where) {
  sqlite3* h = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    std::string s = "SELECT count(*) FROM jobs WHERE " + where;
    if (sqlite3_prepare_v2(h, s.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return n;
}

TEST(PlanDrift, AnUpdateThatWouldNowChangeAnotherNumberOfRowsIsRefused) {
  TempDir w;
  std::string db = w / "app.db";
  sql(db,
      "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT);"
      "INSERT INTO jobs (state) VALUES ('stuck'), ('stuck'), ('stuck'), ('done');");
  const std::string update = "UPDATE jobs SET state = 'queued' WHERE state = 'stuck'";
  Planned p("  sqlite.exec(p.db, \"" + update + "\")\n", {{"db", db}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  ASSERT_EQ(count(db, "state = 'stuck'"), 3);

  sql(db, "INSERT INTO jobs (state) VALUES ('stuck');");  // one more got stuck since
  expect_drift(p, "sqlite.exec", "run SQL on " + db + ": " + update, "{\"rows\":3}", "{\"rows\":4}");
  EXPECT_EQ(count(db, "state = 'stuck'"), 4);
  EXPECT_EQ(count(db, "state = 'queued'"), 0);

  // Fewer rows than planned: refused too.
  sql(db, "UPDATE jobs SET state = 'done' WHERE id IN (3, 5);");
  expect_drift(p, "sqlite.exec", "run SQL on " + db + ": " + update, "{\"rows\":3}", "{\"rows\":2}");
  EXPECT_EQ(count(db, "state = 'stuck'"), 2);

  sql(db, "UPDATE jobs SET state = 'stuck' WHERE id = 3; DELETE FROM jobs WHERE id = 5;");
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(count(db, "state = 'queued'"), 3);
  EXPECT_EQ(count(db, "state = 'stuck'"), 0);
  EXPECT_EQ(count(db, "state = 'done'"), 1);
}

// ---- pip ---------------------------------------------------------------------------------------

// One venv for the file (offline wheels from support/pkg_wheels.py, as pkg_test), rb-schema 4.25.0.
class PipDrift : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> root_;
  static inline std::string venv_, wheels_;
  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>();
    wheels_ = *root_ / "wheels";
    venv_ = *root_ / "venv";
    stdfs::create_directories(wheels_);
    sh("python3 " + q(RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py") + " " + q(wheels_));
    sh("python3 " + q(RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py") + " " + q(wheels_) + " rb-schema==4.24.0");
    sh("python3 -m venv " + q(venv_));
  }
  static void TearDownTestSuite() { root_.reset(); }
  static void install(const std::string& spec) {
    sh(q(venv_ + "/bin/python") + " -m pip install -q --disable-pip-version-check --no-index --find-links " +
       q(wheels_) + " " + q(spec));
  }
  static std::string version(const std::string& dist) {
    return sh(q(venv_ + "/bin/python") + " -c " +
              q("import importlib.metadata as m; print(m.version(\"" + dist + "\"))"));
  }
};

TEST_F(PipDrift, APinOverAVersionChangedSincePlanningIsRefused) {
  install("rb-schema==4.25.0");
  Planned p(
      "  pip.pin{ venv = p.venv, packages = { ['rb-schema'] = '4.23.0' }, find_links = p.wheels,\n"
      "           no_index = true }\n",
      {{"venv", venv_}, {"wheels", wheels_}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  ASSERT_EQ(version("rb-schema"), "4.25.0");

  install("rb-schema==4.24.0");  // someone moved it by hand
  expect_drift(p, "pip.pin", "pin rb-schema==4.23.0 in " + venv_, "{\"versions\":{\"rb-schema\":\"4.25.0\"}}",
               "{\"versions\":{\"rb-schema\":\"4.24.0\"}}");
  EXPECT_EQ(version("rb-schema"), "4.24.0");

  install("rb-schema==4.25.0");
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(version("rb-schema"), "4.23.0");
}

// ---- git ---------------------------------------------------------------------------------------

TEST(PlanDrift, ACheckoutOfATagMovedToAnotherCommitIsRefused) {
  TempDir w;
  std::string repo = w / "repo";
  const std::string git = "git -C " + q(repo) + " -c user.name=T -c user.email=t@example.com ";
  sh("git init -q -b main " + q(repo));
  for (const char* v : {"1", "2", "3"}) {
    write_file(repo + "/version", std::string(v) + "\n");
    sh(git + "add version && " + git + "commit -q -m v" + v);
  }
  std::string c1 = sh(git + "rev-parse HEAD~2"), c2 = sh(git + "rev-parse HEAD~1"), c3 = sh(git + "rev-parse HEAD");
  sh(git + "tag good " + c2);
  Planned p("  git.checkout{ repo = p.repo, ref = 'good' }\n", {{"repo", repo}});
  auto s = p.save();
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  ASSERT_EQ(sh(git + "rev-parse HEAD"), c3);

  sh(git + "tag -f good " + c1);  // the tag was moved after planning
  expect_drift(p, "git.checkout", "check out good in " + repo, "\"target\":\"" + c2 + "\"",
               "\"target\":\"" + c1 + "\"");
  EXPECT_EQ(sh(git + "rev-parse HEAD"), c3);
  EXPECT_EQ(sh(git + "symbolic-ref --short HEAD"), "main");
  EXPECT_EQ(read_file(repo + "/version"), "3\n");

  sh(git + "tag -f good " + c2);
  auto r = p.execute();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(sh(git + "rev-parse HEAD"), c2);
  EXPECT_EQ(read_file(repo + "/version"), "2\n");
}

}  // namespace
