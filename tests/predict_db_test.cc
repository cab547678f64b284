// Dry-run predictions, WouldFail and preview bases of redis.*, sqlite.* and pg.* against real
// servers and files: a verification after a planned change checks the predicted state (and a
// wrong one fails the rehearsal), a change the live run would refuse fails the dry-run there,
// the dry-run changes nothing, and the same runbook passes live.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>

#include "core/hash.h"
#include "core/unknown.h"
#include "support/pg_server.h"
#include "support/redis_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

// The effects named `name`, in call order.
std::vector<const EffectEvent*> effects(const LuaRun& r, const std::string& name) {
  std::vector<const EffectEvent*> out;
  for (const auto& e : r.events.effects)
    if (e.name == name) out.push_back(&e);
  return out;
}

// The states the journal recorded for the effects named `name`, in order.
std::vector<std::string> journal_states(const std::string& journal, const std::string& name) {
  std::vector<std::string> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(journal.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT state FROM effects WHERE name = ? ORDER BY run_id, seq", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// Runs `body` as one step, in run_dir (journal at run_dir/journal.db), with params.
LuaRun step(const TempDir& run_dir, const std::string& body, Mode mode,
            const std::map<std::string, std::string>& params) {
  std::string decl;
  for (const auto& [k, v] : params) decl += k + " = { type = 'string', secret = " + (k == "dsn" ? "true" : "false") + " }, ";
  std::string code = "runbook { name = 'predict', version = '1.0.0', params = { " + decl + "} }\n"
                     "step('s', function(p)\n" + body + "\nend)\n";
  return run_lua(run_dir.path(), code, mode, params);
}

constexpr const char* kWouldFail = "the live run would fail here:";

// ---- redis -----------------------------------------------------------------------------------

using Client = RedisClient;

LuaRun redis_step(const TempDir& run_dir, const RedisServer& s, const std::string& body, Mode mode) {
  return step(run_dir, body, mode, {{"url", s.url(0)}, {"url1", s.url(1)}});
}

}  // namespace

TEST(PredictRedis, CountIsALiveScanCountOfAPattern) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("cache:", 1200);
  cli.fill("keep:", 7);
  TempDir run;
  auto r = redis_step(run, server, R"(
    assert(redis.count{ url = p.url, pattern = "cache:*", batch = 100 } == 1200)
    assert(redis.count{ url = p.url } == 1207)
    assert(redis.count(p.url, "nothing:*") == 0)
    assert(redis.count{ url = p.url1 } == 0)
  )", Mode::Live);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  auto bad = redis_step(run, server, "redis.count{ url = p.url, pattern = '' }", Mode::Live);
  EXPECT_NE(err_of(bad).find("bad argument 'pattern' to 'redis.count'"), std::string::npos) << err_of(bad);
}

TEST(PredictRedis, AfterAPlannedDeleteMatchingCountsAndGetsArePredicted) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("cache:", 300);
  cli.fill("keep:", 20);
  const std::string body = R"(
    redis.delete_matching{ url = p.url, pattern = "cache:*" }
    assert(redis.count{ url = p.url, pattern = "cache:*" } == 0, "cache keys left")
    assert(redis.count{ url = p.url } == 20, "all keys")
    assert(redis.count{ url = p.url, pattern = "cache:1*" } == 0, "a narrower pattern")
    assert(redis.get{ url = p.url, key = "cache:7" } == nil)
    assert(redis.get{ url = p.url, key = "keep:3" } == "v3")
    assert(redis.count{ url = p.url1 } == 0)
  )";
  TempDir dry_dir;
  auto dry = redis_step(dry_dir, server, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(cli.dbsize(), 320) << "the dry-run deleted nothing";
  auto counts = effects(dry, "redis.count");
  ASSERT_EQ(counts.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(counts[i]->status, "predicted") << i;
  EXPECT_EQ(counts[3]->status, "ok") << "another database is read live";
  auto gets = effects(dry, "redis.get");
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_EQ(gets[0]->status, "predicted");
  EXPECT_EQ(gets[1]->status, "ok") << "a key no planned change touches is read live";
  EXPECT_EQ(journal_states(dry_dir / "journal.db", "redis.count"),
            (std::vector<std::string>{"predicted", "predicted", "predicted", "done"}));

  // The preview's basis: the key set it would delete, as a count and a digest of the names.
  ASSERT_EQ(effects(dry, "redis.delete_matching").size(), 1u);
  json basis = effects(dry, "redis.delete_matching")[0]->preview["basis"];
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("cache:" + std::to_string(i));
  std::sort(names.begin(), names.end());
  std::string acc;
  for (const auto& n : names) acc += n + std::string(1, '\0');
  EXPECT_EQ(basis["count"], 300) << basis.dump();
  EXPECT_EQ(basis["digest"], sha256_hex(acc)) << basis.dump();
  // One more key is another basis (drift).
  cli.run({"SET", "cache:new", "x"});
  TempDir dry2;
  auto again = redis_step(dry2, server, "redis.delete_matching{ url = p.url, pattern = 'cache:*' }", Mode::DryRun);
  ASSERT_EQ(again.result.exit_code, 0) << err_of(again);
  json basis2 = effects(again, "redis.delete_matching")[0]->preview["basis"];
  EXPECT_EQ(basis2["count"], 301);
  EXPECT_NE(basis2["digest"], basis["digest"]);
  cli.run({"DEL", "cache:new"});

  // A verification the prediction contradicts fails the rehearsal.
  TempDir wrong_dir;
  auto wrong = redis_step(wrong_dir, server, R"(
    redis.delete_matching{ url = p.url, pattern = "cache:*" }
    assert(redis.count{ url = p.url, pattern = "cache:*" } == 300, "cache keys left")
  )", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);
  EXPECT_NE(err_of(wrong).find("cache keys left"), std::string::npos) << err_of(wrong);
  TempDir wrong2;
  auto wrong_total = redis_step(wrong2, server, R"(
    redis.delete_matching{ url = p.url, pattern = "cache:*" }
    assert(redis.count{ url = p.url } == 320, "all keys")
  )", Mode::DryRun);
  EXPECT_EQ(wrong_total.result.exit_code, 1);
  EXPECT_EQ(cli.dbsize(), 320);

  TempDir live_dir;
  auto live = redis_step(live_dir, server, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(cli.dbsize(), 20);
}

TEST(PredictRedis, AfterAPlannedFlushEverythingIsGoneButWhatThePlanSetsAfterIt) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("a:", 30);
  cli.run({"SELECT", "1"});
  cli.fill("b:", 5);
  cli.run({"SELECT", "0"});
  const std::string body = R"(
    redis.set{ url = p.url, key = "before", value = "x" }
    redis.flush{ url = p.url, confirm = true }
    assert(redis.count{ url = p.url } == 0, "after flush")
    assert(redis.get{ url = p.url, key = "a:1" } == nil)
    assert(redis.get{ url = p.url, key = "before" } == nil)
    assert(redis.count{ url = p.url1 } == 5, "db1 untouched")
    redis.set{ url = p.url, key = "maintenance", value = "on" }
    assert(redis.get{ url = p.url, key = "maintenance" } == "on")
    assert(redis.count{ url = p.url } == 1)
    assert(redis.count{ url = p.url, pattern = "main*" } == 1)
    assert(redis.count{ url = p.url, pattern = "a:*" } == 0)
    redis.del{ url = p.url, key = "maintenance" }
    assert(redis.get{ url = p.url, key = "maintenance" } == nil)
    redis.flush{ url = p.url, all = true, confirm = true }
    assert(redis.count{ url = p.url1 } == 0, "after flushall")
  )";
  TempDir dry_dir;
  auto dry = redis_step(dry_dir, server, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(cli.dbsize(), 30);
  EXPECT_EQ(cli.get("maintenance"), "(nil)");
  auto gets = effects(dry, "redis.get");
  ASSERT_EQ(gets.size(), 4u);
  for (auto* g : gets) EXPECT_EQ(g->status, "predicted");
  EXPECT_EQ(gets[2]->result, "on");
  EXPECT_TRUE(gets[0]->result.is_null()) << gets[0]->result.dump();

  TempDir wrong_dir;
  auto wrong = redis_step(wrong_dir, server, R"(
    redis.flush{ url = p.url, confirm = true }
    assert(redis.get{ url = p.url, key = "a:1" } == "v1", "still there")
  )", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);
  EXPECT_NE(err_of(wrong).find("still there"), std::string::npos) << err_of(wrong);

  TempDir live_dir;
  auto live = redis_step(live_dir, server, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(cli.dbsize(), 0);
}

TEST(PredictRedis, SetAndDelArePredictedForGet) {
  RedisServer server;
  Client cli(server.port());
  cli.run({"SET", "flag", "on"});
  cli.run({"SET", "old", "1"});
  const std::string body = R"(
    redis.set{ url = p.url, key = "flag", value = "off" }
    assert(redis.get{ url = p.url, key = "flag" } == "off")
    redis.del{ url = p.url, key = "old" }
    assert(redis.get{ url = p.url, key = "old" } == nil)
    assert(redis.count{ url = p.url } == 1)
  )";
  TempDir dry_dir;
  auto dry = redis_step(dry_dir, server, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(cli.get("flag"), "on");
  EXPECT_EQ(cli.get("old"), "1");
  TempDir wrong_dir;
  auto wrong = redis_step(wrong_dir, server, R"(
    redis.set{ url = p.url, key = "flag", value = "off" }
    assert(redis.get{ url = p.url, key = "flag" } == "on", "flag")
  )", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);
  TempDir live_dir;
  auto live = redis_step(live_dir, server, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(cli.get("flag"), "off");
}

TEST(PredictRedis, AnUnconfirmedFlushFailsTheDryRunAsTheLiveRunWouldAndADeadServerDoesNot) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("a:", 3);
  TempDir dry_dir;
  auto dry = redis_step(dry_dir, server, "redis.flush{ url = p.url }", Mode::DryRun);
  EXPECT_EQ(dry.result.exit_code, 1);
  EXPECT_NE(err_of(dry).find(std::string("redis.flush: ") + kWouldFail + " refused: FLUSHDB on 127.0.0.1:"),
            std::string::npos) << err_of(dry);
  EXPECT_EQ(cli.dbsize(), 3);
  // Refused whether the server answers or not.
  int dead = free_port();
  TempDir dead_dir;
  auto down = step(dead_dir, "redis.flush{ url = p.url }", Mode::DryRun,
                   {{"url", "redis://127.0.0.1:" + std::to_string(dead) + "/0"}});
  EXPECT_EQ(down.result.exit_code, 1);
  EXPECT_NE(err_of(down).find(kWouldFail), std::string::npos) << err_of(down);
  // With --yes the live run would flush: the dry-run passes.
  TempDir d;
  write_file(d / "rb.lua", "runbook { name = 'f', version = '1.0.0', params = { url = { type = 'url' } } }\n"
                           "step('flush', function(p) redis.flush{ url = p.url }\n"
                           "  assert(redis.count{ url = p.url } == 0) end)\n");
  auto yes = run_cli({"exec", d / "rb.lua", "--dry-run", "--yes", "--journal", d / "j.db", "-p", "url=" + server.url()});
  EXPECT_EQ(yes.code, 0) << yes.out << yes.err;
  auto no = run_cli({"exec", d / "rb.lua", "--dry-run", "--journal", d / "j.db", "-p", "url=" + server.url()});
  EXPECT_EQ(no.code, 1) << no.out << no.err;
  EXPECT_NE((no.out + no.err).find(kWouldFail), std::string::npos) << no.out << no.err;
  EXPECT_EQ(cli.dbsize(), 3);
  // A dead server in a preview is "cannot preview", not a failure of the rehearsal.
  TempDir dm;
  auto cannot = step(dm, "redis.delete_matching{ url = p.url, pattern = 'x:*', timeout = '1s' }", Mode::DryRun,
                     {{"url", "redis://127.0.0.1:" + std::to_string(dead) + "/0"}});
  EXPECT_EQ(cannot.result.exit_code, 0) << err_of(cannot);
}

// ---- sqlite ----------------------------------------------------------------------------------

namespace {

void sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  char* err = nullptr;
  int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  std::string m = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error(m);
}

int64_t rows(const std::string& path, const std::string& table) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr);
  int64_t n = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// users(n rows, names u1..un).
void make_db(const std::string& path, int n) {
  sql(path, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < " + std::to_string(n) +
            ") INSERT INTO users(name) SELECT 'u' || i FROM g;");
}

LuaRun sqlite_step(const TempDir& run_dir, const TempDir& d, const std::string& body, Mode mode) {
  return step(run_dir, body, mode, {{"db", d / "app.db"}, {"backup", d / "backup.db"}, {"dir", d.path()}});
}

}  // namespace

TEST(PredictSqlite, AfterAPlannedRestoreProbesAnswerFromTheBackup) {
  TempDir d;
  make_db(d / "app.db", 10);
  make_db(d / "backup.db", 3);
  const std::string body = R"(
    assert(sqlite.tables{ db = p.db }.users == 10)
    sqlite.restore{ db = p.db, from = p.backup }
    local q = sqlite.query{ db = p.db, sql = "SELECT count(*) AS n, max(name) AS last FROM users" }
    assert(q[1].n == 3 and q[1].last == "u3", json.encode(q))
    assert(sqlite.tables{ db = p.db }.users == 3)
    assert(sqlite.integrity{ db = p.db } == true)
  )";
  std::string before = sha256_file(d / "app.db");
  TempDir dry_dir;
  auto dry = sqlite_step(dry_dir, d, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(sha256_file(d / "app.db"), before);
  EXPECT_EQ(rows(d / "app.db", "users"), 10);
  ASSERT_EQ(effects(dry, "sqlite.query").size(), 1u);
  EXPECT_EQ(effects(dry, "sqlite.query")[0]->status, "predicted");
  EXPECT_EQ(effects(dry, "sqlite.tables")[0]->status, "ok");
  EXPECT_EQ(effects(dry, "sqlite.tables")[1]->status, "predicted");
  EXPECT_EQ(effects(dry, "sqlite.integrity")[0]->status, "predicted");
  EXPECT_EQ(journal_states(dry_dir / "journal.db", "sqlite.query"), std::vector<std::string>{"predicted"});
  // The basis: the backup's content.
  json basis = effects(dry, "sqlite.restore")[0]->preview["basis"];
  EXPECT_EQ(basis["sha256"], sha256_file(d / "backup.db")) << basis.dump();

  TempDir wrong_dir;
  auto wrong = sqlite_step(wrong_dir, d, R"(
    sqlite.restore{ db = p.db, from = p.backup }
    assert(sqlite.tables{ db = p.db }.users == 10, "rows after restore")
  )", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);
  EXPECT_NE(err_of(wrong).find("rows after restore"), std::string::npos) << err_of(wrong);

  TempDir live_dir;
  auto live = sqlite_step(live_dir, d, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(rows(d / "app.db", "users"), 3);
}

TEST(PredictSqlite, BackupExecRestoreChainIsPredictedAndExecIsRehearsedOnACopy) {
  TempDir d;
  make_db(d / "app.db", 10);
  const std::string body = R"(
    local b = sqlite.backup{ db = p.db, to = p.dir .. "/snap.db" }
    -- A script whose second statement needs the first: rehearsed whole, so it passes.
    local c = sqlite.exec{ db = p.db, sql = "CREATE TABLE t2(a); INSERT INTO t2 VALUES (1), (2);" }
    assert(c.affected == 2, json.encode(c))
    -- After a planned exec, another one is not checked against the database as it is now.
    sqlite.exec{ db = p.db, sql = "DELETE FROM users WHERE id > 4; DELETE FROM t2" }
    local unknown_now = sqlite.query{ db = p.db, sql = "SELECT count(*) AS n FROM users" }
    sqlite.restore{ db = p.db, from = b.path }
    assert(sqlite.query{ db = p.db, sql = "SELECT count(*) AS n FROM users" }[1].n == 10)
    assert(sqlite.tables{ db = p.db }.t2 == nil)
  )";
  std::string before = sha256_file(d / "app.db");
  TempDir dry_dir;
  auto dry = sqlite_step(dry_dir, d, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(sha256_file(d / "app.db"), before) << "the rehearsal never writes the file";
  EXPECT_FALSE(stdfs::exists(d / "snap.db"));
  auto q = effects(dry, "sqlite.query");
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0]->status, "predicted");
  EXPECT_TRUE(is_unknown(q[0]->result)) << q[0]->result.dump();
  EXPECT_NE(unknown_why(q[0]->result).find("sqlite.query after sqlite.exec on"), std::string::npos);
  EXPECT_EQ(q[1]->status, "predicted");
  auto ex = effects(dry, "sqlite.exec");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0]->preview["basis"], (json{{"rows", 2}})) << ex[0]->preview.dump();
  EXPECT_FALSE(ex[1]->preview.contains("basis")) << ex[1]->preview.dump();

  // A statement alone is rehearsed on a copy: the rows it changes, exactly.
  TempDir del_dir;
  auto del = sqlite_step(del_dir, d, R"(
    local del = sqlite.exec{ db = p.db, sql = "DELETE FROM users WHERE id > ?", params = { 4 } }
    assert(del.affected == 6, json.encode(del))
  )", Mode::DryRun);
  ASSERT_EQ(del.result.exit_code, 0) << err_of(del);
  EXPECT_EQ(effects(del, "sqlite.exec")[0]->preview["basis"], (json{{"rows", 6}}));
  EXPECT_EQ(sha256_file(d / "app.db"), before);

  TempDir live_dir;
  auto live = sqlite_step(live_dir, d, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(rows(d / "app.db", "users"), 10);
  EXPECT_TRUE(stdfs::exists(d / "snap.db"));
}

TEST(PredictSqlite, RestoresAndExecsTheLiveRunWouldRefuseFailTheDryRun) {
  TempDir d;
  make_db(d / "app.db", 10);
  make_db(d / "good.db", 2);
  write_file(d / "text.db", "this is not a database, just some text that is long enough to have a header\n");
  {
    std::string good = read_file(d / "good.db");
    write_file(d / "half.db", good.substr(0, 100) + std::string(good.size() - 100, 'x'));
  }
  stdfs::create_directories(d / "adir");
  std::string before = sha256_file(d / "app.db");
  struct Case {
    std::string body, expect;
  };
  std::vector<Case> cases = {
      {"sqlite.restore{ db = p.db, from = p.dir .. '/missing.db' }", "does not exist"},
      {"sqlite.restore{ db = p.db, from = p.dir .. '/adir' }", "is a directory"},
      {"sqlite.restore{ db = p.db, from = p.dir .. '/text.db' }", "is damaged"},
      {"sqlite.restore{ db = p.db, from = p.dir .. '/half.db' }", "is damaged"},
      {"sqlite.restore{ db = p.db, from = p.db }", "from is the database itself"},
      {"sqlite.exec{ db = p.db, sql = 'UPDATE nope SET x = 1' }", "no such table: nope"},
      {"sqlite.exec{ db = p.db, sql = 'UPDAT users SET name = 1' }", "syntax error"},
      {"sqlite.exec{ db = p.db, sql = \"INSERT INTO users(name) VALUES ('x'); INSERT INTO nope VALUES (1);\" }",
       "no such table: nope"},
      {"sqlite.exec{ db = p.db, sql = 'INSERT INTO users(id, name) VALUES (1, 2)' }", "UNIQUE constraint failed"},
      {"sqlite.exec{ db = p.dir .. '/none.db', sql = 'DELETE FROM users' }", "does not exist"},
  };
  for (const auto& c : cases) {
    TempDir dry_dir;
    auto dry = sqlite_step(dry_dir, d, c.body + "\nlog.info('after it')", Mode::DryRun);
    EXPECT_EQ(dry.result.exit_code, 1) << c.body;
    EXPECT_NE(err_of(dry).find(kWouldFail), std::string::npos) << c.body << ": " << err_of(dry);
    EXPECT_NE(err_of(dry).find(c.expect), std::string::npos) << c.body << ": " << err_of(dry);
    EXPECT_FALSE(dry.events.logged("after it")) << c.body;
    // The live run fails the same way.
    TempDir live_dir;
    auto live = sqlite_step(live_dir, d, c.body, Mode::Live);
    EXPECT_EQ(live.result.exit_code, 1) << c.body;
    EXPECT_NE(err_of(live).find(c.expect), std::string::npos) << c.body << ": " << err_of(live);
  }
  EXPECT_EQ(sha256_file(d / "app.db"), before);
  EXPECT_FALSE(stdfs::exists(d / "none.db"));
}

// ---- pg ----------------------------------------------------------------------------------------

namespace {

class PredictPg : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      server_ = std::make_unique<PgServer>();
      server_->sql("CREATE DATABASE scratch OWNER app", "postgres");
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    ASSERT_TRUE(server_) << "PostgreSQL did not start: " << PgServer::unavailable() << start_error_;
    db().sql(R"~(
      SET ROLE app;
      DROP TABLE IF EXISTS projects, fresh CASCADE;
      CREATE TABLE projects(id serial PRIMARY KEY, name text NOT NULL, state text NOT NULL DEFAULT 'active');
      INSERT INTO projects(name) SELECT 'p' || g FROM generate_series(1, 20) g;
    )~");
  }
  static PgServer& db() { return *server_; }
  static int64_t count(const std::string& table) { return std::stoll(db().scalar("SELECT count(*) FROM " + table)); }
  LuaRun pg_step(const TempDir& run_dir, const std::string& body, Mode mode) {
    std::string other = db().dsn();
    other = other.substr(0, other.rfind('/')) + "/scratch";
    return step(run_dir, body, mode, {{"dsn", db().dsn()}, {"other", other}, {"dir", dir_.path()}});
  }
  TempDir dir_;
  static inline std::unique_ptr<PgServer> server_;
  static inline std::string start_error_;
};

}  // namespace

TEST_F(PredictPg, AfterAPlannedRestoreOrExecQueriesOfThatDatabaseAreUnknownAndPingIsLive) {
  TempDir dump_run;
  ASSERT_EQ(pg_step(dump_run, "pg.dump{ dsn = p.dsn, file = p.dir .. '/app.dump' }", Mode::Live).result.exit_code, 0);
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 15");
  const std::string body = R"(
    assert(pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects" }[1].n == 15)
    pg.restore{ dsn = p.dsn, file = p.dir .. "/app.dump" }
    local after = pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects" }
    assert(pg.ping{ dsn = p.dsn } == true)
    assert(#pg.query{ dsn = p.other, sql = "SELECT 1 AS one" } == 1)
  )";
  TempDir dry_dir;
  auto dry = pg_step(dry_dir, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(count("projects"), 15) << "the dry-run restored nothing";
  auto q = effects(dry, "pg.query");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0]->status, "ok");
  EXPECT_EQ(q[1]->status, "predicted");
  EXPECT_TRUE(is_unknown(q[1]->result)) << q[1]->result.dump();
  EXPECT_NE(unknown_why(q[1]->result).find("pg.query after pg.restore"), std::string::npos) << q[1]->result.dump();
  EXPECT_EQ(q[2]->status, "ok") << "another database is queried live";
  EXPECT_EQ(effects(dry, "pg.ping")[0]->status, "ok");
  EXPECT_EQ(journal_states(dry_dir / "journal.db", "pg.query"), (std::vector<std::string>{"done", "predicted", "done"}));
  json basis = effects(dry, "pg.restore")[0]->preview["basis"];
  EXPECT_EQ(basis["sha256"], sha256_file(dir_ / "app.dump")) << basis.dump();

  // After a planned exec too.
  TempDir exec_dir;
  auto ex = pg_step(exec_dir, R"(
    local u = pg.exec{ dsn = p.dsn, sql = "UPDATE projects SET state = $1 WHERE id <= $2", params = { "old", 4 } }
    assert(u.affected == 4, json.encode(u))
    local after = pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects WHERE state = 'old'" }
  )", Mode::DryRun);
  ASSERT_EQ(ex.result.exit_code, 0) << err_of(ex);
  EXPECT_EQ(effects(ex, "pg.exec")[0]->preview["basis"], (json{{"rows", 4}}));
  auto eq = effects(ex, "pg.query");
  ASSERT_EQ(eq.size(), 1u);
  EXPECT_EQ(eq[0]->status, "predicted");
  EXPECT_NE(unknown_why(eq[0]->result).find("pg.query after pg.exec"), std::string::npos) << eq[0]->result.dump();
  EXPECT_EQ(db().scalar("SELECT count(*) FROM projects WHERE state = 'old'"), "0");

  // A verification before any change is checked live, and a wrong one fails.
  TempDir wrong_dir;
  auto wrong = pg_step(wrong_dir, R"(
    assert(pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects" }[1].n == 20, "rows")
    pg.restore{ dsn = p.dsn, file = p.dir .. "/app.dump" }
  )", Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, 1);

  TempDir live_dir;
  auto live = pg_step(live_dir, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(count("projects"), 20);
}

TEST_F(PredictPg, RestoresAndExecsTheLiveRunWouldRefuseFailTheDryRun) {
  write_file(dir_ / "garbage.dump", "PGDMP but not really a dump at all\n");
  // A plain dump pg_dump left unfinished (no "dump complete" trailer): restoring it would fail.
  write_file(dir_ / "plain.sql", "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE x(a int);\n");
  std::string before = db().scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM projects t");
  struct Case {
    std::string body, expect;
  };
  std::vector<Case> cases = {
      {"pg.restore{ dsn = p.dsn, file = p.dir .. '/missing.dump' }", "does not exist"},
      {"pg.restore{ dsn = p.dsn, file = p.dir .. '/garbage.dump' }", "pg_restore cannot read"},
      {"pg.restore{ dsn = p.dsn, file = p.dir .. '/plain.sql' }", "is incomplete"},
      {"pg.exec{ dsn = p.dsn, sql = 'UPDATE projects SET nope = 1' }", "column \"nope\" of relation \"projects\" does not exist"},
      {"pg.exec{ dsn = p.dsn, sql = 'DELETE FROM nosuch' }", "relation \"nosuch\" does not exist"},
      {"pg.exec{ dsn = p.dsn, sql = 'INSERT INTO nosuch VALUES (1)' }", "relation \"nosuch\" does not exist"},
      {"pg.exec{ dsn = p.dsn, sql = 'UPDATE projects SET id = id + 1 WHERE id = 1' }", "duplicate key value"},
      {"pg.exec{ dsn = p.dsn, sql = 'UPDATE projects SET name = NULL WHERE id = $1', params = { 3 } }", "null value"},
  };
  for (const auto& c : cases) {
    TempDir dry_dir;
    auto dry = pg_step(dry_dir, c.body + "\nlog.info('after it')", Mode::DryRun);
    EXPECT_EQ(dry.result.exit_code, 1) << c.body;
    EXPECT_NE(err_of(dry).find(kWouldFail), std::string::npos) << c.body << ": " << err_of(dry);
    EXPECT_NE(err_of(dry).find(c.expect), std::string::npos) << c.body << ": " << err_of(dry);
    EXPECT_FALSE(dry.events.logged("after it")) << c.body;
    TempDir live_dir;
    auto live = pg_step(live_dir, c.body, Mode::Live);
    EXPECT_EQ(live.result.exit_code, 1) << c.body;
    EXPECT_NE(err_of(live).find(c.expect), std::string::npos) << c.body << ": " << err_of(live);
  }
  EXPECT_EQ(db().scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM projects t"), before);
  EXPECT_EQ(db().scalar("SELECT last_value FROM projects_id_seq"), "20");
}

TEST_F(PredictPg, WhatTheLiveRunAcceptsDoesNotFailTheDryRun) {
  // A table the plan creates, then fills; a dump the plan makes, then restores; a dead server.
  const std::string body = R"~(
    pg.exec{ dsn = p.dsn, sql = "CREATE TABLE fresh(a int)" }
    pg.exec{ dsn = p.dsn, sql = "INSERT INTO fresh VALUES (1), (2)" }
    pg.exec{ dsn = p.dsn, sql = "UPDATE fresh SET a = 3" }
    pg.dump{ dsn = p.dsn, file = p.dir .. "/new.dump" }
    pg.restore{ dsn = p.dsn, file = p.dir .. "/new.dump" }
  )~";
  TempDir dry_dir;
  auto dry = pg_step(dry_dir, body, Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  EXPECT_EQ(db().scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'fresh'"), "0");
  EXPECT_FALSE(stdfs::exists(dir_ / "new.dump"));
  TempDir live_dir;
  auto live = pg_step(live_dir, body, Mode::Live);
  ASSERT_EQ(live.result.exit_code, 0) << err_of(live);
  EXPECT_EQ(count("fresh"), 2);

  int dead = free_port();
  TempDir dead_dir;
  auto down = step(dead_dir, "pg.exec{ dsn = p.dsn, sql = 'DELETE FROM projects', timeout = '2s' }", Mode::DryRun,
                   {{"dsn", "postgresql://app:pw@127.0.0.1:" + std::to_string(dead) + "/app"}});
  EXPECT_EQ(down.result.exit_code, 0) << "a server that does not answer is \"cannot preview\": " << err_of(down);
}

TEST(PredictSqlite, AnOfflineRehearsalAnswersFromTheBackupOrSaysUnknown) {
  TempDir d;
  make_db(d / "app.db", 10);
  make_db(d / "backup.db", 3);
  TempDir run_dir;
  auto known = run_lua(run_dir.path(),
                       "runbook { name = 'o', version = '1.0.0', params = { db = { type = 'path' }, backup = { type = 'path' } } }\n"
                       "step('s', function(p)\n"
                       "  sqlite.restore{ db = p.db, from = p.backup }\n"
                       "  assert(sqlite.tables{ db = p.db }.users == 3)\n"
                       "  sqlite.restore{ db = p.db, from = p.backup .. '.not-there' }\n"
                       "  local t = sqlite.tables{ db = p.db }\n"
                       "end)\n",
                       Mode::DryRun, {{"db", d / "app.db"}, {"backup", d / "backup.db"}}, true);
  ASSERT_EQ(known.result.exit_code, 0) << err_of(known);
  auto t = effects(known, "sqlite.tables");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0]->status, "predicted");
  EXPECT_EQ(t[1]->status, "predicted");
  EXPECT_TRUE(is_unknown(t[1]->result)) << t[1]->result.dump();
  EXPECT_EQ(rows(d / "app.db", "users"), 10);
}
