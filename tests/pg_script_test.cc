// pg.script and plain-dump pg.restore against a real PostgreSQL 15 (initdb as the postgres user,
// on 127.0.0.1:<free port>), and node-api-rollback's database modes run live against it: a
// multi-statement script commits as one; a failing statement rolls them all back and is named;
// the dry-run counts rows and sees the failure; .sql and .sql.gz dumps restore with counts;
// chosen tables; the down migration undone; the final step keeps maintenance on and the queues
// paused when /health fails; retention keeps the dump it just made.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "support/pg_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

void sh_ok(const std::vector<std::string>& argv, const std::string& cwd) {
  std::string cmd;
  for (const auto& a : argv) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += q + "' ";
  }
  std::string full = "cd '" + cwd + "' && " + cmd + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(full.c_str()), 0) << full;
}

class PgScript : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    unavailable_ = PgServer::unavailable();
    if (!unavailable_.empty()) return;
    try {
      server_ = std::make_unique<PgServer>();
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    // A missing PostgreSQL fails (never skips), with how to install it.
    ASSERT_TRUE(unavailable_.empty()) << unavailable_ << " (install: scripts/install-deps.sh)";
    ASSERT_TRUE(server_) << "PostgreSQL did not start: " << start_error_;
    db().sql(R"~(
      SET ROLE app;
      DROP TABLE IF EXISTS projects, audit, made_by_script CASCADE;
      CREATE TABLE projects(id serial PRIMARY KEY, name text NOT NULL,
                            state text NOT NULL DEFAULT 'active', new_column int);
      CREATE INDEX idx_new_index ON projects(new_column);
      INSERT INTO projects(name) SELECT 'p' || g FROM generate_series(1, 20) g;
      CREATE TABLE audit(id bigserial PRIMARY KEY, msg text);
      INSERT INTO audit(msg) SELECT 'm' || g FROM generate_series(1, 7) g;
    )~");
  }

  static PgServer& db() { return *server_; }
  static int64_t count(const std::string& table) { return std::stoll(db().scalar("SELECT count(*) FROM " + table)); }
  static bool has_table(const std::string& t) {
    return db().scalar("SELECT count(*) FROM pg_tables WHERE tablename = '" + t + "'") == "1";
  }
  static bool has_column(const std::string& c) {
    return db().scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects' AND column_name = '" +
                       c + "'") == "1";
  }

  LuaRun step(const std::string& body, Mode mode = Mode::Live) {
    std::string code =
        "runbook { name = 'pgs', version = '1.0.0', params = { dsn = { type = 'string', secret = true },"
        " dir = { type = 'path' } } }\n"
        "step('s', function(p)\n" + body + "\nend)\n";
    return run_lua(run_dir_.path(), code, mode, {{"dsn", db().dsn()}, {"dir", dir_.path()}});
  }
  static std::string err_of(const LuaRun& r) {
    return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
  }
  static const EffectEvent* effect(const LuaRun& r, const std::string& name) {
    for (const auto& e : r.events.effects)
      if (e.name == name) return &e;
    return nullptr;
  }

  TempDir dir_, run_dir_;
  static inline std::unique_ptr<PgServer> server_;
  static inline std::string unavailable_, start_error_;
};

TEST_F(PgScript, SeveralStatementsCommitTogether) {
  write_file(dir_ / "up.sql", R"~(-- a migration with the things a splitter trips on
CREATE TABLE made_by_script(id int, note text);
INSERT INTO made_by_script VALUES (1, 'semi; colon'), (2, 'it''s; quoted');
/* a block comment; with /* nesting; */ still comment */
UPDATE projects SET state = 'migrated' WHERE id <= 5;
DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$;
COMMENT ON TABLE made_by_script IS E'line\'s; end';
)~");
  auto r = step(R"~(
    local s = pg.script{ dsn = p.dsn, file = p.dir .. "/up.sql" }
    assert(s.statements == 5, json.encode(s))
    assert(s.each[2].rows == 2 and s.each[3].rows == 5 and s.each[3].command == "UPDATE", json.encode(s))
    assert(s.each[3].line == 5, json.encode(s))
    local t = pg.script{ dsn = p.dsn, sql = "BEGIN; DELETE FROM audit WHERE id > 5; INSERT INTO audit(msg) VALUES ('x'); COMMIT;" }
    assert(t.statements == 2 and t.affected == 3, json.encode(t))
  )~");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(has_table("made_by_script"));
  EXPECT_EQ(count("made_by_script"), 2);
  EXPECT_EQ(db().scalar("SELECT note FROM made_by_script WHERE id = 2"), "it's; quoted");
  EXPECT_EQ(db().scalar("SELECT count(*) FROM projects WHERE state = 'migrated'"), "5");
  EXPECT_EQ(count("audit"), 6);
}

TEST_F(PgScript, AFailingThirdStatementRollsBackAllAndIsNamed) {
  write_file(dir_ / "down.sql",
             "CREATE TABLE made_by_script(id int);\nDELETE FROM audit;\n\nUPDATE no_such_table SET x = 1;\n"
             "DELETE FROM projects;\n");
  auto r = step("pg.script{ dsn = p.dsn, file = p.dir .. '/down.sql' }");
  std::string err = err_of(r);
  EXPECT_NE(err.find("pg.script: statement 3 of 4 (" + dir_ / "down.sql" + " line 4: UPDATE no_such_table"),
            std::string::npos) << err;
  EXPECT_NE(err.find("relation \"no_such_table\" does not exist"), std::string::npos) << err;
  EXPECT_NE(err.find("rolled back, nothing was changed"), std::string::npos) << err;
  EXPECT_FALSE(has_table("made_by_script")) << "statement 1 was not rolled back";
  EXPECT_EQ(count("audit"), 7) << "statement 2 was not rolled back";
  EXPECT_EQ(count("projects"), 20);
  // Transaction control inside the script would break all-or-nothing: refused before running.
  auto c = step("pg.script{ dsn = p.dsn, sql = 'DELETE FROM audit; COMMIT; DELETE FROM projects' }");
  EXPECT_NE(err_of(c).find("statement 2 at line 1 is COMMIT"), std::string::npos) << err_of(c);
  EXPECT_EQ(count("audit"), 7);
}

TEST_F(PgScript, ExecRefusesSeveralStatementsLiveAndInTheDryRun) {
  for (Mode m : {Mode::DryRun, Mode::Live}) {
    auto r = step("pg.exec{ dsn = p.dsn, sql = 'DROP INDEX idx_new_index; ALTER TABLE projects DROP COLUMN new_column' }", m);
    EXPECT_NE(r.result.exit_code, 0);
    EXPECT_NE(err_of(r).find("2 statements; pg.exec runs one: use pg.script"), std::string::npos) << err_of(r);
  }
  EXPECT_TRUE(has_column("new_column"));
}

TEST_F(PgScript, DryRunCountsRowsPerStatementAndSeesAFailure) {
  std::string seq = db().scalar("SELECT last_value FROM projects_id_seq");
  auto r = step(R"~(
    local s = pg.script{ dsn = p.dsn, sql = "UPDATE projects SET state = 'x' WHERE id <= 4;\nDELETE FROM audit;\nDROP INDEX idx_new_index" }
    assert(s.statements == 3 and s.planned, json.encode(s))
  )~", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* e = effect(r, "pg.script");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, "planned");
  std::string text = e->preview.value("text", "");
  EXPECT_NE(text.find("would run 3 statements from sql in one transaction"), std::string::npos) << text;
  EXPECT_NE(text.find("1 UPDATE 4 rows; 2 DELETE 7 rows; 3 DROP 0 rows"), std::string::npos) << text;
  EXPECT_NE(text.find("tried in a transaction that was rolled back"), std::string::npos) << text;
  EXPECT_EQ(e->preview["each"][1]["rows"], 7);
  EXPECT_EQ(count("audit"), 7);
  EXPECT_EQ(db().scalar("SELECT count(*) FROM projects WHERE state = 'x'"), "0");
  EXPECT_EQ(db().scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_new_index'"), "1");
  EXPECT_EQ(db().scalar("SELECT last_value FROM projects_id_seq"), seq);

  // A statement that fails as the database is now: the dry-run fails there, as the live run would.
  auto f = step("pg.script{ dsn = p.dsn, sql = 'DELETE FROM audit;\\nALTER TABLE projects DROP COLUMN nope' }", Mode::DryRun);
  EXPECT_NE(f.result.exit_code, 0);
  std::string err = err_of(f);
  EXPECT_NE(err.find("statement 2 of 2 (line 2: ALTER TABLE projects DROP COLUMN nope) failed"), std::string::npos) << err;
  EXPECT_NE(err.find("column \"nope\" of relation \"projects\" does not exist"), std::string::npos) << err;
  EXPECT_EQ(count("audit"), 7);

  // count = false: the statements are only counted.
  auto n = step("pg.script{ dsn = p.dsn, sql = 'DELETE FROM audit; DELETE FROM projects', count = false }", Mode::DryRun);
  ASSERT_EQ(n.result.exit_code, 0) << err_of(n);
  EXPECT_NE(effect(n, "pg.script")->preview.value("text", "").find("2 statements"), std::string::npos);
}

TEST_F(PgScript, PlainAndGzipDumpsRestoreLiveWithCounts) {
  auto d = step("pg.dump{ dsn = p.dsn, file = p.dir .. '/app.sql', format = 'plain' }");
  ASSERT_EQ(d.result.exit_code, 0) << err_of(d);
  sh_ok({"gzip", "-k", "app.sql"}, dir_.path());
  ASSERT_TRUE(stdfs::exists(dir_ / "app.sql.gz"));
  for (std::string file : {"app.sql", "app.sql.gz"}) {
    db().sql("SET ROLE app; DELETE FROM projects WHERE id > 5; DELETE FROM audit; CREATE TABLE IF NOT EXISTS made_by_script(x int)");
    // The dry-run previews it (it no longer says "cannot preview").
    auto dry = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/" + file + "' }", Mode::DryRun);
    ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
    std::string text = effect(dry, "pg.restore")->preview.value("text", "");
    EXPECT_NE(text.find("plain SQL dump"), std::string::npos) << text;
    EXPECT_NE(text.find("2 tables) into app ("), std::string::npos) << text;
    EXPECT_EQ(count("projects"), 5);

    auto r = step(R"~(
      local r = pg.restore{ dsn = p.dsn, file = p.dir .. "/)~" + file + R"~(" }
      assert(r.format == "plain" and r.tables == 2, json.encode(r))
      assert(r.counts["public.projects"] == 20 and r.counts["public.audit"] == 7, json.encode(r))
      assert(r.backup and fs.exists(r.backup), json.encode(r))
    )~");
    ASSERT_EQ(r.result.exit_code, 0) << file << ": " << err_of(r);
    EXPECT_EQ(count("projects"), 20) << file;
    EXPECT_EQ(count("audit"), 7) << file;
    EXPECT_TRUE(r.events.logged("public.projects: 20 rows")) << file;
  }
  // A dump cut short is refused before anything is touched.
  std::string text = read_file(dir_ / "app.sql");
  write_file(dir_ / "cut.sql", text.substr(0, text.size() / 2));
  db().sql("SET ROLE app; DELETE FROM audit");
  auto cut = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/cut.sql' }");
  EXPECT_NE(err_of(cut).find("is incomplete"), std::string::npos) << err_of(cut);
  EXPECT_EQ(count("audit"), 0);
  // A corrupt .gz too.
  write_file(dir_ / "bad.sql.gz", std::string("\x1f\x8b\x08\x00garbage", 12));
  auto bad = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/bad.sql.gz' }");
  EXPECT_NE(err_of(bad).find("corrupt or truncated"), std::string::npos) << "[" << err_of(bad) << "]";
  // A failing statement in the middle of a plain dump leaves the database as it was.
  write_file(dir_ / "fails.sql", "INSERT INTO audit(msg) VALUES ('a');\nINSERT INTO nope VALUES (1);\n");
  auto fails = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/fails.sql', clean = false }");
  EXPECT_NE(err_of(fails).find("relation \"nope\" does not exist"), std::string::npos) << err_of(fails);
  EXPECT_EQ(count("audit"), 0);
}

TEST_F(PgScript, ChosenTablesRestoreTheirRowsOnly) {
  ASSERT_EQ(step("pg.dump{ dsn = p.dsn, file = p.dir .. '/app.dump' }").result.exit_code, 0);
  ASSERT_EQ(step("pg.dump{ dsn = p.dsn, file = p.dir .. '/app.sql', format = 'plain' }").result.exit_code, 0);
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 3; DELETE FROM audit WHERE id > 2");
  auto r = step(R"~(
    local r = pg.restore{ dsn = p.dsn, file = p.dir .. "/app.dump", tables = { "projects" } }
    assert(r.counts.projects == 20 and r.tables == 1, json.encode(r))
  )~");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(count("projects"), 20);
  EXPECT_EQ(count("audit"), 2) << "a table not asked for was restored";
  EXPECT_TRUE(has_column("new_column")) << "the table's definition is kept";

  auto missing = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/app.dump', tables = { 'nope' } }", Mode::DryRun);
  EXPECT_NE(err_of(missing).find("has no table nope"), std::string::npos) << err_of(missing);
  auto plain = step("pg.restore{ dsn = p.dsn, file = p.dir .. '/app.sql', tables = { 'audit' } }");
  EXPECT_NE(err_of(plain).find("is a plain SQL dump, which restores whole"), std::string::npos) << err_of(plain);
  EXPECT_EQ(count("audit"), 2);
}

// ---- node-api-rollback, live ----------------------------------------------------------------

class NodeApi : public PgScript {
 protected:
  void SetUp() override {
    PgScript::SetUp();
    if (HasFatalFailure()) return;
    repo_ = work_ / "repo";
    stdfs::create_directories(repo_);
    sh_ok({"git", "init", "-q", "-b", "main"}, repo_);
    write_file(repo_ + "/index.js", "console.log('api')\n");
    sh_ok({"git", "add", "-A"}, repo_);
    sh_ok({"git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "v1"}, repo_);
    write_file(work_ / "down.sql",
               "DROP INDEX IF EXISTS idx_new_index;\nALTER TABLE projects DROP COLUMN IF EXISTS new_column;\n");
    http_ = std::make_unique<HttpServer>(work_ / "http");
  }

  CliResult rollback(const std::vector<std::pair<std::string, std::string>>& extra) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/node-api-rollback.lua",
                                     "-p", "repo=" + repo_, "-p", "base_url=" + http_->url(""),
                                     "-p", "dsn=" + db().dsn(), "-p", "backup_dir=" + work_ / "backups",
                                     "-p", "healthy_within=3s", "-p", "smoke_script=",
                                     "--journal", work_ / "j.db"};
    for (const auto& kv : extra) {
      args.push_back("-p");
      args.push_back(kv.first + "=" + kv.second);
    }
    return run_cli(args, {{"HOME", work_.path()}, {"XDG_STATE_HOME", work_ / "xdg"}, {"PM2_HOME", work_ / "pm2"}}, 300);
  }
  std::string requests() {
    std::string p = work_ / "http/requests.log";
    return stdfs::exists(p) ? read_file(p) : "";
  }

  TempDir work_;
  std::string repo_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(NodeApi, SchemaModeUndoesTheMigrationAndReopensWhenHealthy) {
  // 5.1 method 1's "check the migration history": Drizzle's table, listed newest first.
  db().sql(R"~(
    SET ROLE app;
    DROP SCHEMA IF EXISTS drizzle CASCADE;
    CREATE SCHEMA drizzle;
    CREATE TABLE drizzle.__drizzle_migrations(id serial PRIMARY KEY, hash text, created_at bigint);
    INSERT INTO drizzle.__drizzle_migrations(hash, created_at) VALUES ('0001_init', 1), ('0002_add_new_column', 2);
  )~");
  auto r = rollback({{"mode", "schema"}, {"down_sql", work_ / "down.sql"}, {"migrations_table", "drizzle.__drizzle_migrations"}});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  record_run_time("002 node-api-rollback mode=schema (dump, down migration, checks)", r);
  EXPECT_FALSE(has_column("new_column")) << "the down migration was not applied";
  EXPECT_EQ(db().scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_new_index'"), "0");
  EXPECT_EQ(count("projects"), 20);
  std::string req = requests();
  EXPECT_NE(req.find("/api/maintenance/enable"), std::string::npos) << req;
  EXPECT_NE(req.find("/api/queue/pause-all"), std::string::npos) << req;
  EXPECT_NE(req.find("/api/maintenance/disable"), std::string::npos) << req;
  EXPECT_NE(req.find("/api/queue/resume-all"), std::string::npos) << req;
  EXPECT_EQ(r.out.find(PgServer::kPassword), std::string::npos);
  size_t newest = r.out.find("0002_add_new_column"), oldest = r.out.find("0001_init");
  ASSERT_NE(newest, std::string::npos) << r.out;
  EXPECT_LT(newest, oldest) << "the migration history is not newest first";
  db().sql("SET ROLE app; DROP SCHEMA drizzle CASCADE;");
}

TEST_F(NodeApi, UnhealthyAfterTheRollbackLeavesMaintenanceOnAndQueuesPaused) {
  http_->set_status(503);
  auto r = rollback({{"mode", "schema"}, {"down_sql", work_ / "down.sql"}});
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_FALSE(has_column("new_column")) << "the migration itself ran";
  std::string req = requests();
  EXPECT_NE(req.find("/api/maintenance/enable"), std::string::npos) << req;
  EXPECT_EQ(req.find("/api/maintenance/disable"), std::string::npos) << "maintenance was turned off: " << req;
  EXPECT_EQ(req.find("resume"), std::string::npos) << "queues were resumed: " << req;
  std::string all = r.out + r.err;
  EXPECT_NE(all.find("maintenance mode stays ON and the queues stay PAUSED"), std::string::npos) << all;
}

TEST_F(NodeApi, AFailedDownMigrationChangesNothingAndStaysPaused) {
  write_file(work_ / "bad_down.sql",
             "DROP INDEX IF EXISTS idx_new_index;\nALTER TABLE projects DROP COLUMN IF EXISTS new_column;\n"
             "UPDATE projects SET missing_column = 1;\n");
  auto r = rollback({{"mode", "schema"}, {"down_sql", work_ / "bad_down.sql"}});
  EXPECT_NE(r.code, 0) << r.out;
  std::string all = r.out + r.err;
  EXPECT_NE(all.find("statement 3 of 3"), std::string::npos) << all;
  EXPECT_TRUE(has_column("new_column")) << "the failed migration was not rolled back";
  EXPECT_EQ(db().scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_new_index'"), "1");
  std::string req = requests();
  EXPECT_EQ(req.find("/api/maintenance/disable"), std::string::npos) << req;
  EXPECT_EQ(req.find("resume"), std::string::npos) << req;
  EXPECT_NE(all.find("maintenance mode stays ON"), std::string::npos) << all;
}

TEST_F(NodeApi, BackupRetentionKeepsTheDumpItJustMade) {
  std::string dir = work_ / "backups";
  stdfs::create_directories(dir);
  // Names that sort after the new dump's, with old modification times, and a dump taken
  // before an earlier rollback, which is not part of the rotation.
  std::vector<std::string> old = {"backup_29990101_000000.dump", "backup_29990102_000000.dump",
                                  "backup_29990103_000000.dump"};
  auto t = stdfs::file_time_type::clock::now() - std::chrono::hours(72);
  for (const auto& f : old) {
    write_file(dir + "/" + f, "PGDMP old\n");
    stdfs::last_write_time(dir + "/" + f, t);
    t += std::chrono::hours(1);
  }
  write_file(dir + "/backup_before_rollback_20200101_000000.dump", "PGDMP before\n");
  auto r = rollback({{"mode", "backup"}, {"severity", "P3"}, {"keep", "2"}});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::vector<std::string> left;
  for (auto& e : stdfs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  ASSERT_EQ(left.size(), 3u) << ::testing::PrintToString(left);
  EXPECT_EQ(left[0].rfind("backup_2", 0), 0u) << "the new dump was removed: " << ::testing::PrintToString(left);
  EXPECT_NE(left[0], old[0]);
  EXPECT_EQ(left[1], "backup_29990103_000000.dump") << "the newest old dump (by mtime) is kept";
  EXPECT_EQ(left[2], "backup_before_rollback_20200101_000000.dump");
  EXPECT_GT(read_file(dir + "/" + left[0]).size(), 100u);
}

// 002 §5.3 after a database rollback: the schema (each verify table and its columns) and the
// relationships are checked; an orphaned row fails the check with its count, and the rollback
// then does not reopen the API.
TEST_F(NodeApi, SchemaAndRelationshipsAreCheckedAfterTheRollback) {
  db().sql(R"~(
    SET ROLE app;
    DROP TABLE IF EXISTS scenes;
    CREATE TABLE scenes(id serial PRIMARY KEY, project_id int);
    INSERT INTO scenes(project_id) SELECT 1 + g % 20 FROM generate_series(1, 30) g;
  )~");
  auto ok = rollback({{"mode", "schema"}, {"down_sql", work_ / "down.sql"},
                      {"verify_tables", "projects,scenes"}, {"relations", "scenes.project_id->projects.id"}});
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("projects: 3 columns (id, name, state)"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("scenes.project_id->projects.id: 0 orphaned rows"), std::string::npos) << ok.out;
  // Rows whose project the rollback lost: named, counted, and the API stays in maintenance.
  db().sql("SET ROLE app; INSERT INTO scenes(project_id) VALUES (9001), (9002), (9003);");
  std::string before = requests();
  auto bad = rollback({{"mode", "schema"}, {"down_sql", work_ / "down.sql"},
                       {"verify_tables", "projects,scenes"}, {"relations", "scenes.project_id->projects.id"}});
  EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
  std::string all = bad.out + bad.err;
  EXPECT_NE(all.find("schema check: 3 rows of scenes.project_id->projects.id point at nothing"), std::string::npos) << all;
  EXPECT_EQ(requests().substr(before.size()).find("/api/maintenance/disable"), std::string::npos);
  // A verify table that does not exist is found before anything changes (checkpoint 1 counts it).
  before = requests();
  auto missing = rollback({{"mode", "schema"}, {"down_sql", work_ / "down.sql"}, {"verify_tables", "projects,nosuch"}});
  EXPECT_NE((missing.out + missing.err).find("relation \"nosuch\" does not exist"), std::string::npos) << missing.out << missing.err;
  EXPECT_EQ(requests(), before) << "the API was touched before the check failed";
  db().sql("SET ROLE app; DROP TABLE scenes;");
}

// 002 §5.1 method 2 at P0: the database back from a plain dump (pg.restore dumps the broken state
// first, beside the rollback's own dump), the counts checked, the API reopened only after, and
// the run timed against P0's 15 minutes.
TEST_F(NodeApi, RestoreModeAtP0PutsTheDumpBackAfterKeepingTheBrokenState) {
  auto d = step("pg.dump{ dsn = p.dsn, file = p.dir .. '/good.sql', format = 'plain' }");
  ASSERT_EQ(d.result.exit_code, 0) << err_of(d);
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 5; DELETE FROM audit;");
  auto r = rollback({{"mode", "restore"}, {"dump", dir_ / "good.sql"}, {"severity", "P0"},
                     {"verify_tables", "projects,audit"}});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  record_run_time("002 node-api-rollback mode=restore severity=P0 (plain dump)", r);
  EXPECT_EQ(count("projects"), 20);
  EXPECT_EQ(count("audit"), 7);
  EXPECT_NE(r.out.find("projects: 5 rows before, 20 after"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("severity P0: done within 15 minutes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(deadline 15 min)"), std::string::npos) << r.out;
  // The rollback's dump of the broken state is there and readable.
  int dumps = 0;
  for (auto& e : stdfs::directory_iterator(work_ / "backups"))
    if (e.path().filename().string().rfind("backup_before_rollback_", 0) == 0) ++dumps;
  EXPECT_EQ(dumps, 1);
  std::string req = requests();
  size_t on = req.find("/api/maintenance/enable"), off = req.find("/api/maintenance/disable");
  ASSERT_NE(on, std::string::npos) << req;
  ASSERT_NE(off, std::string::npos) << req;
  EXPECT_LT(on, off);
  EXPECT_NE(req.find("/api/queue/resume-all"), std::string::npos) << req;

  // 5.2 step 2, chosen records: only the tables named come back from a custom-format dump.
  auto c = step("pg.dump{ dsn = p.dsn, file = p.dir .. '/good.dump', format = 'custom' }");
  ASSERT_EQ(c.result.exit_code, 0) << err_of(c);
  db().sql("SET ROLE app; DELETE FROM projects WHERE id > 10; DELETE FROM audit;");
  auto t = rollback({{"mode", "restore"}, {"dump", dir_ / "good.dump"}, {"tables", "audit"}, {"severity", "P0"}});
  ASSERT_EQ(t.code, 0) << t.out << t.err;
  EXPECT_EQ(count("audit"), 7);
  EXPECT_EQ(count("projects"), 10) << "a table not named was restored";
  EXPECT_NE(t.out.find("tables audit restored from"), std::string::npos) << t.out;
}

// 002 §5.2 at P2: the rows changed since a time are listed, one correcting statement applied after
// the dump, then §5.3's validation queries (npm run db:validate) run; a validation that fails
// keeps maintenance on and the queues paused.
TEST_F(NodeApi, DataModeAtP2ListsCorrectsAndValidates) {
  db().sql(R"~(
    SET ROLE app;
    ALTER TABLE projects ADD COLUMN updated_at timestamptz NOT NULL DEFAULT '2020-01-01';
    UPDATE projects SET state = 'broken', updated_at = now() WHERE id IN (3, 4);
  )~");
  write_file(repo_ + "/package.json",
             R"({"name": "api", "version": "1.0.0", "private": true, "scripts": {)"
             R"("db:validate": "node -e \"require('fs').writeFileSync('validated', 'ok')\"",)"
             R"("db:validate-fails": "node -e \"console.error('2 projects without owner'); process.exit(1)\"",)"
             R"("db:validate-noisy": "echo ERROR constraint violated >> ../app.log"}})");
  write_file(work_ / "fix.sql", "UPDATE projects SET state = 'active' WHERE id IN (3, 4)");
  auto r = rollback({{"mode", "data"}, {"since", "2025-01-01 00:00:00"}, {"data_sql", work_ / "fix.sql"},
                     {"severity", "P2"}, {"validate_script", "db:validate"}});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  record_run_time("002 node-api-rollback mode=data severity=P2 (list, correct, validate)", r);
  EXPECT_NE(r.out.find("2 rows of projects changed since 2025-01-01 00:00:00"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 rows corrected by"), std::string::npos) << r.out;
  EXPECT_EQ(db().scalar("SELECT count(*) FROM projects WHERE state <> 'active'"), "0");
  EXPECT_TRUE(stdfs::exists(repo_ + "/validated")) << "npm run db:validate did not run";
  EXPECT_NE(r.out.find("severity P2: done within 60 minutes"), std::string::npos) << r.out;
  EXPECT_NE(requests().find("/api/maintenance/disable"), std::string::npos);

  db().sql("SET ROLE app; UPDATE projects SET state = 'broken' WHERE id = 3;");
  std::string before = requests();
  auto bad = rollback({{"mode", "data"}, {"data_sql", work_ / "fix.sql"}, {"validate_script", "db:validate-fails"}});
  EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
  std::string all = bad.out + bad.err;
  EXPECT_NE(all.find("2 projects without owner"), std::string::npos) << all;
  EXPECT_NE(all.find("maintenance mode stays ON and the queues stay PAUSED"), std::string::npos) << all;
  std::string since = requests().substr(before.size());
  EXPECT_NE(since.find("/api/maintenance/enable"), std::string::npos) << since;
  EXPECT_EQ(since.find("/api/maintenance/disable"), std::string::npos) << since;
  EXPECT_EQ(since.find("resume"), std::string::npos) << since;

  // Checkpoint 2's "no errors in logs": the validation passes, but an ERROR line was written
  // since the rollback began; the rollback is not verified and the API stays closed.
  write_file(work_ / "app.log", "INFO up\nERROR an old one\n");
  before = requests();
  auto noisy = rollback({{"mode", "data"}, {"data_sql", work_ / "fix.sql"}, {"validate_script", "db:validate-noisy"},
                         {"app_log", work_ / "app.log"}});
  EXPECT_EQ(noisy.code, 1) << noisy.out << noisy.err;
  all = noisy.out + noisy.err;
  EXPECT_NE(all.find("1 new error lines in " + work_ / "app.log" + " since the rollback began"), std::string::npos) << all;
  EXPECT_EQ(requests().substr(before.size()).find("/api/maintenance/disable"), std::string::npos);
  db().sql("SET ROLE app; ALTER TABLE projects DROP COLUMN updated_at;");
}

// 002 §2's "data corruption detected: P0, stop all writes first", measured: rows whose parent
// row is gone, counted in the database by assess.lua.
TEST_F(NodeApi, AssessmentNamesP0ForOrphanedRows) {
  db().sql(R"~(
    SET ROLE app;
    DROP TABLE IF EXISTS scenes;
    CREATE TABLE scenes(id serial PRIMARY KEY, project_id int);
    INSERT INTO scenes(project_id) SELECT 1 + g % 20 FROM generate_series(1, 30) g;
  )~");
  auto assess = [&] {
    return run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/assess.lua", "-p", "procedure=node-api",
                    "-p", "health=" + http_->url("/health"), "-p", "relations=scenes.project_id->projects.id",
                    "--journal", work_ / "assess.db"},
                   {{"HOME", work_.path()}, {"RUNBOOK_PARAM_PG_DSN", db().dsn()}}, 120);
  };
  auto sound = assess();
  ASSERT_EQ(sound.code, 0) << sound.out << sound.err;
  EXPECT_NE(sound.out.find("Level: P3\n"), std::string::npos) << sound.out;
  db().sql("SET ROLE app; DELETE FROM projects WHERE id IN (3, 4);");
  auto broken = assess();
  ASSERT_EQ(broken.code, 0) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("Level: P0\n"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("data corruption detected (stop all writes first): orphaned rows 4 > 0"), std::string::npos)
      << broken.out;
  db().sql("SET ROLE app; DROP TABLE scenes;");
}

// 002 §1: P3 is investigated, not rolled back: every rollback mode is refused before anything
// is touched (the database, the API), naming what to do instead.
TEST_F(NodeApi, P3RefusesEveryRollbackModeAndTouchesNothing) {
  for (std::string mode : {"schema", "restore", "data", "code", "cache"}) {
    auto r = rollback({{"mode", mode}, {"severity", "P3"}, {"down_sql", work_ / "down.sql"},
                       {"dump", work_ / "down.sql"}, {"data_sql", work_ / "down.sql"}, {"stable_ref", "HEAD"}});
    EXPECT_EQ(r.code, 1) << mode << ": " << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("P3: investigate and fix forward; rerun with a higher severity"), std::string::npos)
        << mode << ": " << r.out << r.err;
  }
  EXPECT_TRUE(has_column("new_column"));
  EXPECT_EQ(count("projects"), 20);
  EXPECT_EQ(requests(), "") << "the API was sent a change";
  EXPECT_FALSE(stdfs::exists(work_ / "backups")) << "a P3 refusal dumped the database";
}

}  // namespace
