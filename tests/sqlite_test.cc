// sqlite.* against real database files: a backup taken while another connection writes,
// restores after lost rows and after corruption, read-only queries, and dry-runs that leave the
// file byte for byte as it was.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/hash.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

LuaRun step(const TempDir& d, const std::string& body, Mode mode = Mode::Live) {
  std::string code =
      "runbook { name = 'sqlite', version = '1.0.0', params = { dir = { type = 'path' } } }\n"
      "step('s', function(p)\n" + body + "\nend)\n";
  TempDir run_dir;
  return run_lua(run_dir.path(), code, mode, {{"dir", d.path()}});
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

// A test's own connection, to set up and to check what the effects did.
struct Conn {
  sqlite3* db = nullptr;
  explicit Conn(const std::string& path, int busy_ms = 10000) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, busy_ms);
  }
  ~Conn() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(m + " in " + sql);
    }
  }
  int64_t count(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
  }
};

// users(100 rows), posts(50 rows).
void make_app_db(const std::string& path) {
  Conn c(path);
  c.exec("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, score REAL, note TEXT);"
         "CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER, body TEXT);"
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
         "INSERT INTO users SELECT i, 'user' || i, i * 1.5, CASE WHEN i % 2 = 0 THEN 'even' END FROM n;"
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) "
         "INSERT INTO posts SELECT i, i, 'post ' || i FROM n;");
}

void overwrite(const std::string& path, long offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void backup_while_writing(bool wal) {
  TempDir d;
  std::string db = d / "live.db";
  {
    Conn c(db);
    if (wal) c.exec("PRAGMA journal_mode=WAL");
    // About 6 MB, so that the copy takes many steps and the writer gets between them.
    c.exec("CREATE TABLE events(id INTEGER PRIMARY KEY, payload TEXT);"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
           "INSERT INTO events(payload) SELECT printf('%.300d', i) FROM n;");
  }
  std::atomic<bool> stop{false};
  std::atomic<int> commits{0};
  std::string writer_error;
  std::thread writer([&] {
    try {
      Conn c(db, 20000);
      while (!stop) {
        c.exec("INSERT INTO events(payload) VALUES (printf('%.300d', abs(random() % 1000000)))");
        ++commits;
        // A busy application: hundreds of commits a second.
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
  });
  while (commits < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int before = commits;
  auto r = step(d, R"(
    local b = sqlite.backup{ db = p.dir .. "/live.db", to = p.dir .. "/backups/" }
    assert(b.path:match("/backups/live%.db%.bak%-%d+%-%d+$"), b.path)
    assert(b.tables.events >= 20000, json.encode(b))
    assert(b.sha256 == fs.sha256(b.path))
    assert(b.size == fs.stat(b.path).size and b.size > 5000000, b.size)
    assert(sqlite.integrity{ db = b.path })
    assert(sqlite.tables{ db = b.path }.events == b.tables.events)
    print(b.path)
  )");
  int during = commits - before;
  stop = true;
  writer.join();
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(writer_error, "");
  EXPECT_GT(during, 0) << "nobody wrote while the backup ran";
  // The copy is one consistent state of the live database: between the start and the end.
  // One self-contained file (no -wal or -shm beside it, even after it was read).
  std::vector<std::string> files;
  for (const auto& e : stdfs::directory_iterator(d / "backups")) files.push_back(e.path().string());
  ASSERT_EQ(files.size(), 1u);
  std::string path = files[0];
  Conn copy(path);
  Conn live(db);
  EXPECT_GE(copy.count("events"), 20000 + before);
  EXPECT_LE(copy.count("events"), live.count("events"));
  EXPECT_EQ(copy.count("events WHERE length(payload) <> 300"), 0);
  EXPECT_FALSE(stdfs::exists(path + ".partial"));
}

}  // namespace

TEST(Sqlite, BackupOfALiveDatabaseWhileAnotherConnectionWrites) { backup_while_writing(false); }

TEST(Sqlite, BackupOfALiveWalDatabaseWhileAnotherConnectionWrites) { backup_while_writing(true); }

TEST(Sqlite, RestoreAfterLostRowsPutsBackTheRowCountsAndKeepsTheCurrentFile) {
  TempDir d;
  make_app_db(d / "app.db");
  auto r = step(d, R"(
    local db = p.dir .. "/app.db"
    local b = sqlite.backup{ db = db, to = p.dir .. "/good.db" }
    assert(b.tables.users == 100 and b.tables.posts == 50, json.encode(b.tables))
    local del = sqlite.exec{ db = db, sql = "DELETE FROM users WHERE id > ?", params = { 70 } }
    assert(del.affected == 30, json.encode(del))
    assert(sqlite.tables{ db = db }.users == 70)
    local res = sqlite.restore{ db = db, from = b.path }
    assert(res.tables.users == 100 and res.tables.posts == 50, json.encode(res))
    assert(res.restored == db)
    -- the state before the restore is kept
    assert(sqlite.tables{ db = res.backup }.users == 70, res.backup)
    assert(sqlite.integrity{ db = db })
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  Conn c(d / "app.db");
  EXPECT_EQ(c.count("users"), 100);
  EXPECT_EQ(c.count("posts"), 50);
}

TEST(Sqlite, RestoreAfterCorruption) {
  TempDir d;
  make_app_db(d / "app.db");
  auto r1 = step(d, "sqlite.backup{ db = p.dir .. '/app.db', to = p.dir .. '/good.db' }");
  ASSERT_EQ(r1.result.exit_code, 0) << err_of(r1);

  // Damage inside the file: a table page zeroed.
  overwrite(d / "app.db", 4096 + 100, std::string(2000, '\0'));
  auto r2 = step(d, R"(
    local db = p.dir .. "/app.db"
    assert(sqlite.integrity{ db = db } == false, "the damaged file passed")
    local res = sqlite.restore{ db = db, from = p.dir .. "/good.db" }
    assert(res.tables.users == 100 and res.tables.posts == 50, json.encode(res))
    assert(sqlite.integrity{ db = db })
  )");
  ASSERT_EQ(r2.result.exit_code, 0) << err_of(r2);
  EXPECT_TRUE(r2.events.logged("fails its integrity check")) << "the problems were not noted";

  // A file that is no database any more (its header overwritten).
  overwrite(d / "app.db", 0, "this is not a database at all");
  auto r3 = step(d, R"(
    local db = p.dir .. "/app.db"
    assert(sqlite.integrity{ db = db } == false)
    local damaged = fs.sha256(db)
    local res = sqlite.restore{ db = db, from = p.dir .. "/good.db" }
    assert(res.tables.users == 100, json.encode(res))
    assert(res.backup, "the damaged file was not kept")
    assert(fs.sha256(res.backup) == damaged, "the damaged bytes were not kept as they were")
  )");
  ASSERT_EQ(r3.result.exit_code, 0) << err_of(r3);
  Conn c(d / "app.db");
  EXPECT_EQ(c.count("users"), 100);
}

TEST(Sqlite, RestoreRefusesADamagedBackupAndChangesNothing) {
  TempDir d;
  make_app_db(d / "app.db");
  make_app_db(d / "bad.db");
  overwrite(d / "bad.db", 0, "garbage garbage garbage");
  std::string before = sha256_file(d / "app.db");
  auto r = step(d, "sqlite.restore{ db = p.dir .. '/app.db', from = p.dir .. '/bad.db' }");
  EXPECT_NE(err_of(r).find("sqlite.restore: "), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("bad.db"), std::string::npos) << err_of(r);
  EXPECT_EQ(sha256_file(d / "app.db"), before);
}

TEST(Sqlite, QueryOnAMissingFileFailsAndDoesNotCreateIt) {
  TempDir d;
  auto r = step(d, "sqlite.query{ db = p.dir .. '/missing.db', sql = 'SELECT 1' }");
  EXPECT_NE(err_of(r).find("sqlite.query: database " + (d / "missing.db") + " does not exist"),
            std::string::npos)
      << err_of(r);
  EXPECT_FALSE(stdfs::exists(d / "missing.db"));
  auto e = step(d, "sqlite.exec{ db = p.dir .. '/missing.db', sql = 'CREATE TABLE t(x)' }");
  EXPECT_NE(err_of(e).find("sqlite.exec: database"), std::string::npos) << err_of(e);
  EXPECT_FALSE(stdfs::exists(d / "missing.db"));
}

TEST(Sqlite, QueryReturnsTypedRowsAndCannotWrite) {
  TempDir d;
  make_app_db(d / "app.db");
  std::string before = sha256_file(d / "app.db");
  auto r = step(d, R"(
    local db = p.dir .. "/app.db"
    local rows = sqlite.query{ db = db, sql = "SELECT id, name, score, note FROM users WHERE id <= ? ORDER BY id", params = { 2 } }
    assert(#rows == 2, #rows)
    assert(math.type(rows[1].id) == "integer" and rows[1].id == 1)
    assert(rows[2].score == 3.0 and type(rows[2].score) == "number")
    assert(rows[1].note == nil and rows[2].note == "even")
    local named = sqlite.query{ db = db, sql = "SELECT count(*) AS n FROM users WHERE id > :min", params = { min = 90 } }
    assert(named[1].n == 10, json.encode(named))
    assert(#sqlite.query{ db = db, sql = "SELECT * FROM users WHERE id < 0" } == 0)

    local ok, err = pcall(sqlite.query, { db = db, sql = "DELETE FROM users" })
    assert(not ok and tostring(err):find("only reads"), tostring(err))
    ok, err = pcall(sqlite.query, { db = db, sql = "SELECT 1; DELETE FROM users" })
    assert(not ok and tostring(err):find("more than one statement"), tostring(err))
    -- ATTACH passes as read-only, but the attached file opens read-only too: it is not created.
    ok, err = pcall(sqlite.query, { db = db, sql = "ATTACH '" .. p.dir .. "/new.db' AS x" })
    assert(not ok, "ATTACH created a database")
    ok, err = pcall(sqlite.query, { db = db, sql = "SELECT * FROM users WHERE id = ?" })
    assert(not ok and tostring(err):find("1 parameter"), tostring(err))
    assert(sqlite.tables{ db = db }.users == 100)
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_FALSE(stdfs::exists(d / "new.db"));
  EXPECT_EQ(sha256_file(d / "app.db"), before);
}

TEST(Sqlite, ExecRunsAScriptAllOrNothing) {
  TempDir d;
  make_app_db(d / "app.db");
  auto r = step(d, R"(
    local db = p.dir .. "/app.db"
    local ok, err = pcall(sqlite.exec, { db = db, sql = [[
      DELETE FROM posts;  -- applied first, then undone
      INSERT INTO nowhere VALUES (1);
    ]] })
    assert(not ok and tostring(err):find("no such table: nowhere") and tostring(err):find("rolled back"), tostring(err))
    assert(sqlite.tables{ db = db }.posts == 50)
    local res = sqlite.exec{ db = db, sql = [[
      CREATE TABLE flags(name TEXT PRIMARY KEY, enabled INTEGER);
      INSERT INTO flags VALUES ('a', 1), ('b', 1), ('c', 0);
      UPDATE flags SET enabled = 0 WHERE enabled = 1;
    ]] }
    assert(res.affected == 5 and res.statements == 3, json.encode(res))
    local ret = sqlite.exec{ db = db, sql = "UPDATE flags SET enabled = 1 WHERE name = :n RETURNING name", params = { n = "a" } }
    assert(ret.affected == 1 and ret.rows[1].name == "a", json.encode(ret))
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST(Sqlite, ALockedDatabaseFailsWithinTheTimeout) {
  TempDir d;
  make_app_db(d / "app.db");
  Conn holder(d / "app.db");
  holder.exec("BEGIN EXCLUSIVE");
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(d, "sqlite.exec{ db = p.dir .. '/app.db', sql = 'DELETE FROM users', timeout = '500ms' }");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(err_of(r).find("locked"), std::string::npos) << err_of(r);
  EXPECT_LT(took, std::chrono::seconds(5));
  t0 = std::chrono::steady_clock::now();
  auto b = step(d, "sqlite.backup{ db = p.dir .. '/app.db', to = p.dir .. '/b.db', timeout = '500ms' }");
  EXPECT_NE(err_of(b).find("sqlite.backup: "), std::string::npos) << err_of(b);
  EXPECT_NE(err_of(b).find("locked"), std::string::npos) << err_of(b);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_FALSE(stdfs::exists(d / "b.db"));
  EXPECT_FALSE(stdfs::exists(d / "b.db.partial"));
  holder.exec("ROLLBACK");
  Conn c(d / "app.db");
  EXPECT_EQ(c.count("users"), 100);
}

TEST(Sqlite, DryRunLeavesTheFileByteForByteAndPreviewsWithNumbers) {
  TempDir d;
  make_app_db(d / "app.db");
  make_app_db(d / "good.db");
  {
    Conn c(d / "good.db");
    c.exec("INSERT INTO users(name) VALUES ('extra')");
  }
  std::string before = sha256_tree(d.path());
  auto r = step(d, R"(
    local db = p.dir .. "/app.db"
    local b = sqlite.backup{ db = db, to = p.dir .. "/backups/" }
    assert(b.tables.users == 100, json.encode(b))  -- planned from the preview
    local del = sqlite.exec{ db = db, sql = "DELETE FROM users" }
    assert(del.affected == 100, json.encode(del))  -- rehearsed on an in-memory copy
    local res = sqlite.restore{ db = db, from = p.dir .. "/good.db" }
    assert(res.tables.users == 101, json.encode(res))
    -- probes answer from the backup the plan restores (read-only)
    assert(sqlite.tables{ db = db }.users == 101)
    assert(#sqlite.query{ db = db, sql = "SELECT id FROM users" } == 101)
    assert(sqlite.integrity{ db = db })
  )", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sha256_tree(d.path()), before);
  EXPECT_FALSE(stdfs::exists(d / "backups"));
  std::string previews;
  for (const auto& e : r.events.effects) previews += e.preview.dump() + "\n";
  EXPECT_NE(previews.find("posts=50, users=100"), std::string::npos) << previews;
  EXPECT_NE(previews.find("users=101"), std::string::npos) << previews;
  EXPECT_NE(previews.find("KiB"), std::string::npos) << previews;
}

TEST(Sqlite, TheStepDeadlineBoundsTheWaitForALock) {
  TempDir d;
  make_app_db(d / "app.db");
  Conn holder(d / "app.db");
  holder.exec("BEGIN EXCLUSIVE");
  std::string code =
      "runbook { name = 'sqlite', version = '1.0.0', params = { dir = { type = 'path' } } }\n"
      "step{ 'clean', timeout = '1s', run = function(p)\n"
      "  sqlite.exec{ db = p.dir .. '/app.db', sql = 'DELETE FROM users' }  -- its own timeout is 30s\n"
      "end }\n";
  TempDir run_dir;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_lua(run_dir.path(), code, Mode::Live, {{"dir", d.path()}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  EXPECT_NE(r.result.exit_code, 0);
  EXPECT_NE(err_of(r).find("step 'clean' exceeded its timeout of 1.0s (in sqlite.exec)"), std::string::npos)
      << err_of(r);
  holder.exec("ROLLBACK");
}
