// pg.* against a real PostgreSQL 15 started for this suite (initdb as the postgres user, on
// 127.0.0.1:<free port>): ping, typed query rows, read-only queries, exec with parameters,
// dump → break → restore, dry-runs that change nothing, and the password kept out of
// everything the engine writes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "core/hash.h"
#include "support/pg_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

class Pg : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_ = PgServer::unavailable();
    if (!skip_.empty()) return;
    try {
      server_ = std::make_unique<PgServer>();
      server_->sql("CREATE DATABASE scratch OWNER app", "postgres");
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    // A missing PostgreSQL fails (never skips), with how to install it.
    ASSERT_TRUE(skip_.empty()) << skip_ << " (install: scripts/install-deps.sh)";
    ASSERT_TRUE(server_) << "PostgreSQL did not start: " << start_error_;
    // Fresh tables owned by the app role, so its dumps and restores can drop and recreate them.
    db().sql(R"~(
      SET ROLE app;
      DROP TABLE IF EXISTS projects, audit CASCADE;
      CREATE TABLE projects(id serial PRIMARY KEY, name text NOT NULL,
                            state text NOT NULL DEFAULT 'active', budget numeric(12,2), meta jsonb);
      INSERT INTO projects(name, budget, meta)
        SELECT 'p' || g, g * 10.5, jsonb_build_object('n', g) FROM generate_series(1, 20) g;
      CREATE TABLE audit(id bigserial PRIMARY KEY, msg text);
      INSERT INTO audit(msg) SELECT 'm' || g FROM generate_series(1, 7) g;
    )~");
  }

  static PgServer& db() { return *server_; }
  static int64_t count(const std::string& table, const std::string& database = PgServer::kDb) {
    return std::stoll(db().scalar("SELECT count(*) FROM " + table, database));
  }
  // The content of a table, for "unchanged" checks.
  static std::string checksum(const std::string& table) {
    return db().scalar("SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM " + table + " t");
  }

  // Runs `body` as one step with params dsn (the app's, with its password) and dir.
  LuaRun step(const std::string& body, Mode mode = Mode::Live, std::map<std::string, std::string> params = {}) {
    params.emplace("dsn", db().dsn());
    params.emplace("dir", dir_.path());
    std::string code =
        "runbook { name = 'pg', version = '1.0.0', params = { dsn = { type = 'string', secret = true },"
        " dir = { type = 'path' }, other = { type = 'string' } } }\n"
        "step('s', function(p)\n" + body + "\nend)\n";
    return run_lua(run_dir_.path(), code, mode, params);
  }
  static std::string err_of(const LuaRun& r) {
    return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
  }
  const EffectEvent* effect(const LuaRun& r, const std::string& name) {
    for (const auto& e : r.events.effects)
      if (e.name == name) return &e;
    return nullptr;
  }

  TempDir dir_, run_dir_;
  static inline std::unique_ptr<PgServer> server_;
  static inline std::string skip_, start_error_;
};

std::string all_files_under(const std::string& dir) {
  std::string all;
  std::error_code ec;
  for (auto& e : stdfs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) all += read_file(e.path().string());
  return all;
}

}  // namespace

TEST_F(Pg, PingUpWrongPasswordAndDownPromptly) {
  int dead = free_port();
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(R"~(
    assert(pg.ping{ dsn = p.dsn } == true, "up")
    assert(pg.ping(p.dsn) == true, "positional")
    assert(pg.ping{ dsn = p.other } == false, "wrong password")
    assert(pg.ping{ dsn = "postgresql://app@127.0.0.1:)~" + std::to_string(dead) + R"~(/app" } == false, "down")
  )~", Mode::Live, {{"other", db().dsn_with_password("wrong-pass-123")}});
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_TRUE(r.events.logged("password authentication failed")) << "why the ping failed is logged";
  EXPECT_TRUE(r.events.logged("Connection refused"));
}

TEST_F(Pg, DeadServerFailsQueryPromptlyNamingTheCall) {
  int dead = free_port();
  auto t0 = std::chrono::steady_clock::now();
  auto r = step("pg.query{ dsn = 'postgresql://app:pw-xyz@127.0.0.1:" + std::to_string(dead) +
                "/app', sql = 'SELECT 1' }");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(err_of(r).find("pg.query: cannot connect to app@127.0.0.1:" + std::to_string(dead) + "/app"),
            std::string::npos) << err_of(r);
}

TEST_F(Pg, ServerThatNeverAnswersIsBoundedByTimeoutAndStepDeadline) {
  // Accepts TCP connections (the kernel's backlog) and never says a word.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(s, 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  std::string mute = "postgresql://app:pw-mute@127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/app";
  auto t0 = std::chrono::steady_clock::now();
  std::string code = "runbook { name = 'mute', version = '1.0.0' }\n"
                     "step('ping', function() assert(pg.ping{ dsn = '" + mute + "', timeout = '700ms' } == false) end)\n"
                     "step{ 'query', timeout = '1s', run = function() pg.query{ dsn = '" + mute + "', sql = 'SELECT 1' } end }\n";
  auto r = run_lua(run_dir_.path(), code);
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(s);
  EXPECT_LT(took, std::chrono::seconds(4));
  ASSERT_EQ(r.events.step_outcomes.size(), 2u);
  EXPECT_EQ(r.events.step_outcomes[0], "1:succeeded") << err_of(r);
  // Either the effect gives up at the deadline it was bounded by ("pg.query: cannot connect ...
  // the step's deadline") or the step's own timer fires first ("exceeded its timeout of 1.0s (in
  // pg.query)"), depending on scheduling; both name the call and the deadline, promptly.
  std::string err = err_of(r);
  EXPECT_NE(err.find("pg.query"), std::string::npos) << err;
  EXPECT_TRUE(err.find("the step's deadline") != std::string::npos ||
              err.find("exceeded its timeout of 1.0s") != std::string::npos)
      << err;
}

TEST_F(Pg, QueryReturnsTypedRowsInColumnOrder) {
  auto r = step(R"~(
    local rows = pg.query{ dsn = p.dsn, sql = [[
      SELECT 7::int2 AS s, 70000::int4 AS i, 9007199254740993::int8 AS big, 2.5::float8 AS f,
             12.50::numeric AS n, 42::numeric AS whole, true AS yes, false AS no, NULL::text AS nothing,
             'héllo'::text AS t, '{"a": 1, "b": [1, 2]}'::jsonb AS j, '[3, 4]'::json AS arr,
             now()::date AS d]] }
    assert(#rows == 1)
    local x = rows[1]
    assert(math.type(x.s) == "integer" and x.s == 7)
    assert(math.type(x.i) == "integer" and x.i == 70000)
    assert(math.type(x.big) == "integer" and x.big == 9007199254740993, tostring(x.big))
    assert(math.type(x.f) == "float" and x.f == 2.5)
    assert(x.n == 12.5, tostring(x.n))
    assert(math.type(x.whole) == "integer" and x.whole == 42)
    assert(x.yes == true and x.no == false)
    assert(x.nothing == nil)
    assert(x.t == "héllo")
    assert(x.j.a == 1 and x.j.b[2] == 2, json.encode(x.j))
    assert(x.arr[1] == 3 and x.arr[2] == 4)
    assert(type(x.d) == "string" and x.d:match("^%d%d%d%d%-%d%d%-%d%d$"))
    local c = pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects WHERE id > $1 AND name <> $2",
                        params = { 10, "p12" } }
    assert(c[1].n == 9, json.encode(c))
    local none = pg.query{ dsn = p.dsn, sql = "SELECT * FROM projects WHERE id < 0" }
    assert(type(none) == "table" and #none == 0)
  )~");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* q = effect(r, "pg.query");
  ASSERT_TRUE(q);
  std::vector<std::string> cols;
  for (auto it = q->result[0].begin(); it != q->result[0].end(); ++it) cols.push_back(it.key());
  EXPECT_EQ(cols, (std::vector<std::string>{"s", "i", "big", "f", "n", "whole", "yes", "no", "nothing", "t",
                                            "j", "arr", "d"}));
  EXPECT_EQ(q->kind, Kind::Probe);
}

TEST_F(Pg, QueryCannotWriteEvenWhenAskedTo) {
  std::string before = checksum("projects");
  auto r = step(R"~(
    local function fails(sql, want)
      local ok, err = pcall(pg.query, { dsn = p.dsn, sql = sql })
      assert(not ok, sql .. " succeeded")
      assert(tostring(err):find(want, 1, true), tostring(err))
    end
    fails("UPDATE projects SET state = 'gone'", "read-only transaction")
    fails("DELETE FROM projects", "read-only transaction")
    fails("CREATE TABLE sneaky(x int)", "read-only transaction")
    fails("SELECT 1; DELETE FROM projects", "multiple commands")
    -- Switching the transaction back to read-write from inside the statement is refused too.
    fails("DO $$ BEGIN SET TRANSACTION READ WRITE; DELETE FROM projects; END $$", "read-write mode must be set before any query")
    fails("WITH x AS (SELECT set_config('transaction_read_only', 'off', true)) DELETE FROM projects", "read-only transaction")
    fails("SELECT * FROM no_such_table", "pg.query: relation \"no_such_table\" does not exist")
  )~");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(checksum("projects"), before);
  EXPECT_EQ(db().scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'sneaky'"), "0");
}

TEST_F(Pg, QueryIsCancelledAtItsTimeout) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = step("pg.query{ dsn = p.dsn, sql = 'SELECT pg_sleep(30)', timeout = '500ms' }");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(err_of(r).find("pg.query: timed out after 500ms; the statement was cancelled"), std::string::npos)
      << err_of(r);
  // The server is not still sleeping on our behalf.
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = db().scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'") == "0";
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone);
}

TEST_F(Pg, ManyRowsComeWholeAndATooLargeResultIsRefusedAsItGrows) {
  auto r = step(R"~(
    local rows = pg.query{ dsn = p.dsn, sql = "SELECT g AS n, NULL::text AS t FROM generate_series(1, 20000) g" }
    assert(#rows == 20000 and rows[1].n == 1 and rows[20000].n == 20000 and rows[5].t == nil, #rows)
    local multi = pg.exec{ dsn = p.dsn, sql = "UPDATE projects SET state = state WHERE id <= 3 RETURNING id" }
    assert(multi.affected == 3 and #multi.rows == 3 and multi.command == "UPDATE", json.encode(multi))
  )~");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  // 200 MB of values: refused at 64 MiB, before the runner holds it all.
  auto t0 = std::chrono::steady_clock::now();
  r = step("pg.query{ dsn = p.dsn, sql = \"SELECT repeat('x', 1000000) AS big FROM generate_series(1, 200)\" }");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  EXPECT_NE(err_of(r).find("pg.query: the result is larger than 64.0 MiB (select fewer rows or columns)"),
            std::string::npos)
      << err_of(r);
}

TEST_F(Pg, ExecWithParamsNeverSplicesThem) {
  auto r = step(R"~(
    local u = pg.exec{ dsn = p.dsn, sql = "UPDATE projects SET state = $1 WHERE id = $2", params = { "old", 7 } }
    assert(u.affected == 1 and u.command == "UPDATE", json.encode(u))
    local d = pg.exec{ dsn = p.dsn, sql = "DELETE FROM projects WHERE id > $1", params = { 18 } }
    assert(d.affected == 2, json.encode(d))
    local evil = "x'); DROP TABLE audit; --"
    local i = pg.exec{ dsn = p.dsn, sql = "INSERT INTO projects(name, meta) VALUES ($1, $2) RETURNING id, name, meta",
                       params = { evil, { k = "v" } } }
    assert(i.affected == 1 and i.rows[1].name == evil and i.rows[1].meta.k == "v", json.encode(i))
    local ddl = pg.exec{ dsn = p.dsn, sql = "CREATE INDEX projects_state ON projects(state)" }
    assert(ddl.affected == 0 and ddl.command == "CREATE")
  )~");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(db().scalar("SELECT state FROM projects WHERE id = 7"), "old");
  EXPECT_EQ(count("projects WHERE state = 'old'"), 1);
  EXPECT_EQ(count("projects"), 19);
  EXPECT_EQ(count("audit"), 7) << "the parameter was executed as SQL";
  EXPECT_EQ(effect(r, "pg.exec")->kind, Kind::Change);
}

// A NULL among the parameters: Lua lists cannot hold nil, so json.null stands for it.
TEST_F(Pg, JsonNullPassesASqlNullParameter) {
  auto r = step(R"~(
    local rows = pg.query{ dsn = p.dsn, sql = "SELECT $1::int IS NULL AS first_null, $2::int AS second",
                           params = { json.null, 5 } }
    assert(rows[1].first_null == true and rows[1].second == 5, json.encode(rows))
  )~");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST_F(Pg, BadInputAndMissingBinaryAreClearErrors) {
  auto r = step(R"~(
    local ok, err = pcall(pg.exec, { dsn = p.dsn, sql = "SELECT 1", params = { a = 1 } })
    assert(not ok and tostring(err):find("bad argument 'params' to 'pg.exec'", 1, true), tostring(err))
    ok, err = pcall(pg.query, { dsn = "postgresql://app:pw@[::1", sql = "SELECT 1" })
    assert(not ok and tostring(err):find("bad argument 'dsn' to 'pg.query'", 1, true), tostring(err))
    ok, err = pcall(pg.dump, { dsn = p.dsn, file = p.dir .. "/x.dump", bin = "/nonexistent" })
    assert(not ok and tostring(err):find("pg.dump: pg_dump not found in /nonexistent", 1, true), tostring(err))
    ok, err = pcall(pg.dump, { dsn = p.dsn, file = p.dir .. "/x.dump", format = "zip" })
    assert(not ok and tostring(err):find("bad argument 'format' to 'pg.dump'", 1, true), tostring(err))
    ok, err = pcall(pg.restore, { dsn = p.dsn, file = p.dir .. "/missing.dump" })
    assert(not ok and tostring(err):find("pg.restore: the dump .* does not exist"), tostring(err))
  )~");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_FALSE(stdfs::exists(dir_ / "x.dump"));
}

TEST_F(Pg, DumpBreakRestoreBringsTheRowsBackAfterBackingUpTheBrokenState) {
  auto dumped = step(R"~(
    local d = pg.dump{ dsn = p.dsn, file = p.dir .. "/app.dump" }
    assert(d.path == p.dir .. "/app.dump" and d.size > 0 and #d.sha256 == 64 and d.tables == 2, json.encode(d))
    assert(fs.exists(d.manifest))
  )~");
  ASSERT_EQ(dumped.result.exit_code, 0) << err_of(dumped);
  const EffectEvent* de = effect(dumped, "pg.dump");
  ASSERT_TRUE(de);
  EXPECT_EQ(de->result["sha256"], sha256_file(dir_ / "app.dump"));
  EXPECT_EQ(de->result["size"], stdfs::file_size(dir_ / "app.dump"));
  EXPECT_FALSE(stdfs::exists(dir_ / "app.dump.partial")) << "the temp name was renamed";
  std::string good_projects = checksum("projects"), good_audit = checksum("audit");

  // Break it: rows gone, a table gone, rows changed.
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 5; DROP TABLE audit; UPDATE projects SET state = 'broken'");
  ASSERT_EQ(count("projects"), 5);

  auto restored = step(R"~(
    local r = pg.restore{ dsn = p.dsn, file = p.dir .. "/app.dump", clean = true }
    assert(r.restored == p.dir .. "/app.dump" and r.tables == 2, json.encode(r))
    assert(type(r.backup) == "string" and fs.exists(r.backup), json.encode(r))
    -- The backup holds the database as it was just before: restore it elsewhere and look.
    local scratch = p.dsn:gsub("/app$", "/scratch")
    pg.restore{ dsn = scratch, file = r.backup, backup = false }
    local n = pg.query{ dsn = scratch, sql = "SELECT count(*) AS n, min(state) AS s FROM projects" }
    assert(n[1].n == 5 and n[1].s == "broken", json.encode(n))
    local audit = pg.query{ dsn = scratch, sql = "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'audit'" }
    assert(audit[1].n == 0)
  )~");
  ASSERT_EQ(restored.result.exit_code, 0) << err_of(restored);
  EXPECT_EQ(count("projects"), 20);
  EXPECT_EQ(count("audit"), 7);
  EXPECT_EQ(checksum("projects"), good_projects);
  EXPECT_EQ(checksum("audit"), good_audit);
  const EffectEvent* re = effect(restored, "pg.restore");
  ASSERT_TRUE(re);
  std::string backup = re->result["backup"];
  EXPECT_NE(backup.find(run_dir_.path() + "/artifacts/"), std::string::npos) << backup;
}

TEST_F(Pg, RestoreRefusesAnUnreadableDumpBeforeTouchingAnything) {
  // A plain dump restores (tests/pg_script_test.cc); a custom one that pg_restore cannot read,
  // or tables = with a plain dump, is refused before any backup is taken.
  auto r = step(R"~(
    pg.dump{ dsn = p.dsn, file = p.dir .. "/app.sql", format = "plain" }
    assert(fs.read(p.dir .. "/app.sql"):find("CREATE TABLE public.projects", 1, true))
    fs.write{ path = p.dir .. "/broken.dump", content = "PGDMP not really" }
    local ok, err = pcall(pg.restore, { dsn = p.dsn, file = p.dir .. "/broken.dump" })
    assert(not ok and tostring(err):find("pg_restore cannot read", 1, true), tostring(err))
    pg.restore{ dsn = p.dsn, file = p.dir .. "/app.sql", tables = { "projects" } }
  )~");
  EXPECT_NE(err_of(r).find("is a plain SQL dump, which restores whole"), std::string::npos) << err_of(r);
  EXPECT_EQ(all_files_under(run_dir_ / "artifacts").find("PGDMP"), std::string::npos)
      << "no backup was taken for a restore that cannot run";
  EXPECT_EQ(count("projects"), 20);
}

TEST_F(Pg, DryRunOfExecDumpAndRestoreChangesNothingAndPreviewsWithNumbers) {
  // A real dump to restore from, made live first.
  ASSERT_EQ(step("pg.dump{ dsn = p.dsn, file = p.dir .. '/app.dump' }").result.exit_code, 0);
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 15");
  std::string projects = checksum("projects"), audit = checksum("audit");
  std::string dump_sha = sha256_file(dir_ / "app.dump");
  std::string seq = db().scalar("SELECT last_value FROM projects_id_seq");

  auto r = step(R"~(
    -- Probes still run: the runbook can look at the real state (before any planned change to it).
    assert(pg.query{ dsn = p.dsn, sql = "SELECT count(*) AS n FROM projects" }[1].n == 15)
    local u = pg.exec{ dsn = p.dsn, sql = "UPDATE projects SET state = $1 WHERE id <= $2", params = { "old", 4 } }
    assert(u.affected == 4 and u.planned, json.encode(u))
    local d = pg.exec{ dsn = p.dsn, sql = "DELETE FROM audit" }
    assert(d.affected == 7, json.encode(d))
    local i = pg.exec{ dsn = p.dsn, sql = "INSERT INTO audit(msg) SELECT 'x' FROM generate_series(1, 50)" }
    assert(i.affected == 50, json.encode(i))
    local f = pg.dump{ dsn = p.dsn, file = p.dir .. "/other.dump" }
    assert(f.path == p.dir .. "/other.dump" and f.tables == 2, json.encode(f))
    local r = pg.restore{ dsn = p.dsn, file = p.dir .. "/app.dump" }
    assert(r.restored == p.dir .. "/app.dump" and r.backup, json.encode(r))
    pg.exec{ dsn = p.dsn, sql = "UPDATE projects SET nope = 1" }  -- after the restore: not a sure failure
  )~", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(checksum("projects"), projects);
  EXPECT_EQ(checksum("audit"), audit);
  EXPECT_EQ(db().scalar("SELECT last_value FROM projects_id_seq"), seq);
  EXPECT_EQ(sha256_file(dir_ / "app.dump"), dump_sha);
  EXPECT_FALSE(stdfs::exists(dir_ / "other.dump"));
  EXPECT_FALSE(stdfs::exists(run_dir_ / "artifacts/2")) << "no backup in a dry-run";

  std::vector<std::string> previews;
  for (const auto& e : r.events.effects) {
    if (e.name == "pg.query") continue;
    EXPECT_EQ(e.status, "planned") << e.name;
    previews.push_back(e.preview.is_object() ? e.preview.value("text", "") : e.preview.dump());
  }
  ASSERT_EQ(previews.size(), 6u);
  EXPECT_NE(previews[0].find("would update 4 rows (counted by running it in a transaction that was rolled back)"),
            std::string::npos) << previews[0];
  EXPECT_NE(previews[1].find("would delete 7 rows"), std::string::npos) << previews[1];
  EXPECT_NE(previews[2].find("about 50 rows (the planner's estimate)"), std::string::npos) << previews[2];
  EXPECT_NE(previews[3].find("dumps database app ("), std::string::npos) << previews[3];
  EXPECT_NE(previews[3].find("2 tables) to " + dir_ / "other.dump"), std::string::npos) << previews[3];
  EXPECT_NE(previews[4].find(", 2 tables) into app ("), std::string::npos) << previews[4];
  EXPECT_NE(previews[4].find("backs up the current database first"), std::string::npos) << previews[4];
  EXPECT_NE(previews[5].find("would fail: column \"nope\" of relation \"projects\" does not exist"),
            std::string::npos) << previews[5];
}

TEST_F(Pg, PasswordNeverReachesJournalOutputOrErrors) {
  TempDir d;
  int dead = free_port();
  std::string pw = PgServer::kPassword;
  std::string kv = "host=127.0.0.1 port=" + std::to_string(db().port()) + " user=app dbname=app password='" + pw + "'";
  // The dsn is written into the runbook itself (not a secret parameter): only secrets_of can
  // know it holds a password.
  write_file(d / "rb.lua", R"~(runbook { name = "pg-secrets", version = "1.0.0" }
local dsn = ")~" + db().dsn() + R"~("
step("work", function()
  assert(pg.ping{ dsn = dsn })
  assert(pg.ping{ dsn = [[)~" + kv + R"~(]] })
  log.info("rows: " .. pg.query{ dsn = dsn, sql = "SELECT count(*) AS n FROM projects" }[1].n)
  pg.exec{ dsn = dsn, sql = "UPDATE projects SET state = $1 WHERE id = $2", params = { "old", 3 } }
  local dump = pg.dump{ dsn = dsn, file = ")~" + d / "app.dump" + R"~(" }
  pg.restore{ dsn = dsn, file = dump.path }
end)
step("dead server", function()
  pg.query{ dsn = "postgresql://app:)~" + pw + "@127.0.0.1:" + std::to_string(dead) + R"~(/app", sql = "SELECT 1" }
end)
)~");
  auto r = run_cli({"exec", d / "rb.lua", "--json", "--journal", d / "journal.db"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("pg.query: cannot connect to app@127.0.0.1:" + std::to_string(dead)), std::string::npos) << r.out;
  EXPECT_EQ(db().scalar("SELECT state FROM projects WHERE id = 3"), "old") << "the first step really ran";
  EXPECT_EQ(r.out.find(pw), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find(pw), std::string::npos) << r.err;
  std::string journal;
  for (const auto& f : {"journal.db", "journal.db-wal"}) journal += read_file(d / f);
  ASSERT_FALSE(journal.empty());
  EXPECT_NE(journal.find("postgresql://app:***@127.0.0.1"), std::string::npos) << "the dsn is journaled, redacted";
  EXPECT_NE(journal.find("password='***'"), std::string::npos) << "so is the key=value one";
  EXPECT_EQ(journal.find(pw), std::string::npos) << "the password is in the journal";
  EXPECT_EQ(all_files_under(d / "artifacts").find(pw), std::string::npos) << "the password is in an artifact";
  auto show = run_cli({"show", "last", "--json", "--journal", d / "journal.db"});
  EXPECT_EQ(show.out.find(pw), std::string::npos) << show.out;
}
