// runbooks/alembic-rollback.lua live (source 003, "Alembic Migration Rollback" and "Staged
// Database Rollback"): a real Alembic project written here (alembic.ini, env.py reading
// $DATABASE_URL, four revisions: create users, add users.email, create payments, add
// payments.currency), upgraded to head with Debian's `alembic`, then rolled back by the runbook
// one migration, two, and to a named revision, with the health check after each step — against
// a SQLite file and against a real PostgreSQL 15 (tests/support/pg_server). What is asserted is
// what an operator checks: `alembic current`, the alembic_version table, the tables and
// columns that exist, the backup taken first, and what `runbook show` recorded. A downgrade
// that raises stops the run at the last good revision without claiming health; an unhealthy app
// stops it after the first downgrade; a dry-run changes nothing and shows the revisions and the
// SQL it would run. The PostgreSQL password reaches alembic only in its environment.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "os/process.h"
#include "support/pg_server.h"
#include "support/pm2.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

const char* kInstall = "apt-get install -y --no-install-recommends python3-alembic alembic python3-psycopg2";

// The revisions, oldest first.
const char* kR1 = "1a2b3c4d5e6f";  // create users
const char* kR2 = "2b3c4d5e6f7a";  // add users.email
const char* kR3 = "3c4d5e6f7a8b";  // create payments
const char* kR4 = "4d5e6f7a8b9c";  // add payments.currency

const char* kIni = R"(# written by alembic_test
[alembic]
script_location = migrations
sqlalchemy.url = sqlite:///not-this-one.db

[loggers]
keys = root,sqlalchemy,alembic
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
qualname =
[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine
[logger_alembic]
level = INFO
handlers =
qualname = alembic
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
)";

// As the seeds' apps do: the URL (with its password) comes from the environment.
const char* kEnvPy = R"(import os
from logging.config import fileConfig
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")

if context.is_offline_mode():
    context.configure(url=url, target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
)";

std::string revision(const std::string& rev, const std::string& down, const std::string& msg,
                     const std::string& up, const std::string& downgrade) {
  return "\"\"\"" + msg + "\"\"\"\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = \"" + rev +
         "\"\ndown_revision = " + (down.empty() ? std::string("None") : "\"" + down + "\"") +
         "\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    " + up +
         "\n\n\ndef downgrade():\n    " + downgrade + "\n";
}

// The project: <dir>/alembic.ini, <dir>/migrations/{env.py,script.py.mako,versions/*.py}.
// failing: payments' downgrade raises instead of dropping the table.
void write_project(const std::string& dir, bool failing = false) {
  write_file(dir + "/alembic.ini", kIni);
  write_file(dir + "/migrations/env.py", kEnvPy);
  write_file(dir + "/migrations/script.py.mako", "# not used: the revisions are written by the test\n");
  std::string v = dir + "/migrations/versions/";
  write_file(v + "r1_users.py",
             revision(kR1, "", "create users",
                      "op.create_table(\"users\", sa.Column(\"id\", sa.Integer, primary_key=True), "
                      "sa.Column(\"name\", sa.String(50), nullable=False))",
                      "op.drop_table(\"users\")"));
  write_file(v + "r2_email.py", revision(kR2, kR1, "add users.email",
                                         "op.add_column(\"users\", sa.Column(\"email\", sa.String(100)))",
                                         "op.drop_column(\"users\", \"email\")"));
  write_file(v + "r3_payments.py",
             revision(kR3, kR2, "create payments, one per booking",
                      "op.create_table(\"payments\", sa.Column(\"id\", sa.Integer, primary_key=True), "
                      "sa.Column(\"user_id\", sa.Integer), sa.Column(\"amount\", sa.Numeric(10, 2)))",
                      failing ? "raise RuntimeError(\"payments downgrade refused: rows still reference it\")"
                              : "op.drop_table(\"payments\")"));
  write_file(v + "r4_currency.py", revision(kR4, kR3, "add payments.currency",
                                            "op.add_column(\"payments\", sa.Column(\"currency\", sa.String(3)))",
                                            "op.drop_column(\"payments\", \"currency\")"));
}

rb::os::ProcessResult run(const std::vector<std::string>& argv, const std::string& cwd,
                          const std::map<std::string, std::string>& env = {}) {
  rb::os::ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = env;
  spec.timeout = std::chrono::seconds(120);
  return rb::os::run_process(spec);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A missing tool fails the test with the command that installs it.
::testing::AssertionResult tools_present(bool postgres) {
  if (rb::os::which("alembic").empty())
    return ::testing::AssertionFailure() << "alembic is not installed: " << kInstall;
  auto v = run({"alembic", "--version"}, "/");
  if (v.code != 0)
    return ::testing::AssertionFailure() << "alembic --version failed (" << v.stderr_text << "): " << kInstall;
  if (postgres) {
    // The alembic script's own interpreter (Debian's /usr/bin/python3) must import the driver.
    auto p = run({"/usr/bin/python3", "-c", "import psycopg2"}, "/");
    if (p.code != 0)
      return ::testing::AssertionFailure() << "psycopg2 is missing for SQLAlchemy's postgresql:// URLs: " << kInstall;
  }
  return ::testing::AssertionSuccess();
}

// One database under test (a SQLite file, or a PostgreSQL database): how alembic reaches it,
// how the runbook is told about it, and what the schema holds.
class Db {
 public:
  virtual ~Db() = default;
  virtual std::string url() const = 0;  // for DATABASE_URL
  virtual std::vector<std::string> params() const = 0;
  virtual std::map<std::string, std::string> param_env() const { return {}; }
  virtual std::string version() const = 0;  // alembic_version, "" at base
  virtual bool has_table(const std::string& t) const = 0;
  virtual bool has_column(const std::string& t, const std::string& c) const = 0;
  virtual void exec_sql(const std::string& sql) const = 0;
};

class SqliteDb : public Db {
 public:
  explicit SqliteDb(std::string file) : file_(std::move(file)) {}
  std::string url() const override { return "sqlite:///" + file_; }
  std::vector<std::string> params() const override { return {"db_kind=sqlite", "sqlite_db=" + file_}; }
  std::string query(const std::string& sql) const {
    auto r = run({"sqlite3", "-batch", file_, sql}, "/");
    if (r.code != 0) throw std::runtime_error("sqlite3 " + sql + ": " + r.stderr_text);
    return trimmed(r.stdout_text);
  }
  std::string version() const override {
    if (!has_table("alembic_version")) return "";
    return query("SELECT version_num FROM alembic_version");
  }
  bool has_table(const std::string& t) const override {
    return query("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='" + t + "'") == "1";
  }
  bool has_column(const std::string& t, const std::string& c) const override {
    return query("SELECT count(*) FROM pragma_table_info('" + t + "') WHERE name='" + c + "'") == "1";
  }
  void exec_sql(const std::string& sql) const override { query(sql); }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

class PgDb : public Db {
 public:
  PgDb(PgServer& server, std::string name) : s_(server), name_(std::move(name)) {
    s_.sql("DROP DATABASE IF EXISTS " + name_, "postgres");
    s_.sql("CREATE DATABASE " + name_ + " OWNER app", "postgres");
  }
  std::string url() const override {
    return std::string("postgresql://app:") + PgServer::kPassword + "@127.0.0.1:" + std::to_string(s_.port()) + "/" + name_;
  }
  std::vector<std::string> params() const override { return {"db_kind=postgres"}; }
  // The DSN holds the password: it reaches runbook through its environment channel, not argv.
  std::map<std::string, std::string> param_env() const override { return {{"RUNBOOK_PARAM_DSN", url()}}; }
  std::string version() const override {
    if (!has_table("alembic_version")) return "";
    auto rows = s_.sql("SELECT version_num FROM alembic_version", name_);
    std::string out;
    for (const auto& r : rows) out += (out.empty() ? "" : ",") + r[0];
    return out;
  }
  bool has_table(const std::string& t) const override {
    return s_.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema='public' AND table_name='" + t + "'",
                     name_) == "1";
  }
  bool has_column(const std::string& t, const std::string& c) const override {
    return s_.scalar("SELECT count(*) FROM information_schema.columns WHERE table_schema='public' AND table_name='" + t +
                         "' AND column_name='" + c + "'",
                     name_) == "1";
  }
  void exec_sql(const std::string& sql) const override { s_.sql("SET ROLE app; " + sql, name_); }
  std::string scalar(const std::string& sql) const { return s_.scalar(sql, name_); }

 private:
  PgServer& s_;
  std::string name_;
};

// A project dir, its database, a health endpoint, and the CLI's state, all in one temp dir.
class Project {
 public:
  explicit Project(bool failing = false) : health_(dir_ / "health") {
    write_project(app(), failing);
    stdfs::create_directories(dir_ / "home");
  }
  std::string app() const { return dir_ / "app"; }
  const TempDir& dir() const { return dir_; }
  HttpServer& health() { return health_; }
  std::string journal() const { return dir_ / "journal.db"; }

  rb::os::ProcessResult alembic(const Db& db, const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"alembic"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, app(), {{"DATABASE_URL", db.url()}});
  }
  // `alembic current` as an operator runs it: "<rev> (head)" or "<rev>".
  std::string current(const Db& db) const {
    auto r = alembic(db, {"current"});
    EXPECT_EQ(r.code, 0) << r.stderr_text;
    std::string out = trimmed(r.stdout_text);
    auto sp = out.find(' ');
    return sp == std::string::npos ? out : out.substr(0, sp);
  }
  void upgrade_head(const Db& db) const {
    auto r = alembic(db, {"upgrade", "head"});
    ASSERT_EQ(r.code, 0) << "alembic upgrade head: " << r.stderr_text << r.stdout_text;
    ASSERT_EQ(db.version(), kR4);
  }

  CliResult runbook(const Db& db, const std::vector<std::string>& extra, bool dry = false,
                    const std::map<std::string, std::string>& more_env = {}) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/alembic-rollback.lua",
                                     "--journal", journal()};
    if (dry) args.push_back("--dry-run");
    std::vector<std::string> params = {"app_dir=" + app(), "health_url=" + health_.url("/health"),
                                       "healthy_within=5s", "count_tables=users"};
    for (const auto& p : db.params()) params.push_back(p);
    for (const auto& p : extra) params.push_back(p);
    for (const auto& p : params) {
      args.push_back("-p");
      args.push_back(p);
    }
    std::map<std::string, std::string> env = {{"HOME", dir_ / "home"}, {"XDG_STATE_HOME", dir_ / "home/state"}};
    for (const auto& kv : db.param_env()) env.insert(kv);
    for (const auto& kv : more_env) env.insert(kv);
    return run_cli(args, env, 300);
  }
  CliResult show() const { return run_cli({"show", "last", "--journal", journal()}); }
  CliResult show_json() const { return run_cli({"show", "last", "--json", "--journal", journal()}); }

 private:
  TempDir dir_;
  HttpServer health_;
};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// The schema at each revision, as the operator would check it.
void expect_schema_at(const Db& db, const std::string& rev) {
  SCOPED_TRACE("schema at " + rev);
  int n = rev == kR4 ? 4 : rev == kR3 ? 3 : rev == kR2 ? 2 : rev == kR1 ? 1 : 0;
  EXPECT_EQ(db.has_table("users"), n >= 1);
  EXPECT_EQ(db.has_column("users", "email"), n >= 2);
  EXPECT_EQ(db.has_table("payments"), n >= 3);
  EXPECT_EQ(db.has_column("payments", "currency"), n >= 4);
}

// One, two, then (after upgrading again) to a named revision, each checked the way 003 says.
void downgrade_one_several_and_to_a_revision(Project& pj, const Db& db) {
  pj.upgrade_head(db);
  db.exec_sql("INSERT INTO users (id, name, email) VALUES (1, 'ann', 'ann@example.org'), (2, 'bo', NULL)");
  expect_schema_at(db, kR4);

  // alembic downgrade -1
  auto one = pj.runbook(db, {"steps=1"});
  ASSERT_EQ(one.code, 0) << one.out << one.err;
  EXPECT_EQ(db.version(), kR3);
  EXPECT_EQ(pj.current(db), kR3);
  expect_schema_at(db, kR3);
  EXPECT_TRUE(contains(one.out, std::string("plan 1/1: alembic downgrade ") + kR3 + " (undoes " + kR4)) << one.out;
  EXPECT_TRUE(contains(one.out, std::string("at revision ") + kR3 + ", " + pj.health().url("/health") + " healthy"))
      << one.out;
  EXPECT_TRUE(contains(one.out, std::string("Revision before: ") + kR4)) << one.out;
  auto show1 = pj.show();
  ASSERT_EQ(show1.code, 0) << show1.err;
  EXPECT_TRUE(contains(show1.out, std::string("downgrade ") + kR3)) << show1.out;
  EXPECT_TRUE(contains(show1.out, "http.wait_healthy")) << show1.out;

  // alembic downgrade -2, one migration at a time
  auto two = pj.runbook(db, {"steps=2"});
  ASSERT_EQ(two.code, 0) << two.out << two.err;
  EXPECT_EQ(db.version(), kR1);
  EXPECT_EQ(pj.current(db), kR1);
  expect_schema_at(db, kR1);
  for (const char* rev : {kR2, kR1})
    EXPECT_TRUE(contains(two.out, std::string("at revision ") + rev + ", ")) << two.out;
  EXPECT_LT(two.out.find(std::string("at revision ") + kR2), two.out.find(std::string("at revision ") + kR1))
      << "the health check runs after each step, in order";
  auto show2 = pj.show_json();
  ASSERT_EQ(show2.code, 0) << show2.err;
  int downgrades = 0, health = 0;
  size_t at = 0;
  while ((at = show2.out.find("\"downgrade\",", at)) != std::string::npos) ++downgrades, ++at;
  at = 0;
  while ((at = show2.out.find("\"http.wait_healthy\"", at)) != std::string::npos) ++health, ++at;
  EXPECT_GE(downgrades, 2) << show2.out;
  EXPECT_GE(health, 3) << "one health check per downgrade and the final verification: " << show2.out;
  // The rows of the kept table survived.
  EXPECT_TRUE(contains(two.out, "users: 2 rows before, 2 after")) << two.out;

  // alembic upgrade head, then alembic downgrade <revision> (a prefix, as operators type it)
  pj.upgrade_head(db);
  auto to = pj.runbook(db, {std::string("target=") + std::string(kR2).substr(0, 6)});
  ASSERT_EQ(to.code, 0) << to.out << to.err;
  EXPECT_EQ(db.version(), kR2);
  EXPECT_EQ(pj.current(db), kR2);
  expect_schema_at(db, kR2);
  EXPECT_TRUE(contains(to.out, std::string("at revision ") + kR3 + ", ")) << "one step at a time: " << to.out;
  EXPECT_TRUE(contains(to.out, std::string("at revision ") + kR2 + ", ")) << to.out;

  // Going to base would drop every table: refused before anything changes.
  auto base = pj.runbook(db, {"steps=5"});
  EXPECT_NE(base.code, 0);
  EXPECT_TRUE(contains(base.out + base.err, "going to base")) << base.out << base.err;
  EXPECT_EQ(db.version(), kR2);
}

// 003 "Test application after each rollback": a downgrade that raises stops the run there.
void failed_downgrade_stops_at_the_last_good_revision(Project& pj, const Db& db) {
  pj.upgrade_head(db);
  auto r = pj.runbook(db, {"steps=3"});
  EXPECT_NE(r.code, 0) << r.out;
  std::string all = r.out + r.err;
  // Stopped at r3: r4 was undone, r3's downgrade raised, r2 and r1 never touched.
  EXPECT_EQ(db.version(), kR3);
  EXPECT_EQ(pj.current(db), kR3);
  expect_schema_at(db, kR3);
  EXPECT_TRUE(contains(all, "payments downgrade refused: rows still reference it")) << all;
  EXPECT_TRUE(contains(all, std::string("alembic_version holds ") + kR3)) << all;
  EXPECT_TRUE(contains(all, "FAILED: downgrade 2/3")) << all;
  EXPECT_FALSE(contains(all, "healthy after each downgrade")) << all;
  EXPECT_FALSE(contains(all, std::string("at revision ") + kR2)) << all;
  // The final verification never ran: no health success claimed after the failure.
  auto show = pj.show_json();
  ASSERT_EQ(show.code, 0) << show.err;
  json rec = json::parse(show.out, nullptr, false);
  ASSERT_TRUE(rec.is_object()) << show.out;
  EXPECT_NE(rec.value("outcome", rec.value("state", "")), "succeeded") << show.out;
  bool verified = false;
  for (const auto& s : rec.value("steps", json::array()))
    if (s.value("name", "") == "Verify data integrity and health" &&
        s.value("outcome", s.value("state", "")) == "succeeded")
      verified = true;
  EXPECT_FALSE(verified) << show.out;
}

// The health check after the first downgrade fails: the second is not run.
void unhealthy_app_stops_after_the_first_downgrade(Project& pj, const Db& db) {
  pj.upgrade_head(db);
  pj.health().set_status(503);
  auto r = pj.runbook(db, {"steps=2", "healthy_within=3s"});
  EXPECT_NE(r.code, 0) << r.out;
  std::string all = r.out + r.err;
  EXPECT_EQ(db.version(), kR3) << all;
  expect_schema_at(db, kR3);
  EXPECT_TRUE(contains(all, "unhealthy after downgrade 1/2")) << all;
  EXPECT_TRUE(contains(all, "1 more migration(s) not undone")) << all;
  pj.health().set_status(200);
}

void dry_run_changes_nothing(Project& pj, const Db& db, const std::string* sqlite_file) {
  pj.upgrade_head(db);
  std::string sum = sqlite_file ? sha256_tree(stdfs::path(*sqlite_file).parent_path().string()) : "";
  auto r = pj.runbook(db, {"steps=2"}, true);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(db.version(), kR4);
  EXPECT_EQ(pj.current(db), kR4);
  expect_schema_at(db, kR4);
  if (sqlite_file) {
    EXPECT_EQ(sha256_tree(stdfs::path(*sqlite_file).parent_path().string()), sum);
  }
  // The plan: the revisions it passes, in order, and the SQL alembic would run.
  EXPECT_TRUE(contains(r.out, std::string("plan 1/2: alembic downgrade ") + kR3 + " (undoes " + kR4 +
                                  ": add payments.currency)"))
      << r.out;
  EXPECT_TRUE(contains(r.out, std::string("plan 2/2: alembic downgrade ") + kR2 + " (undoes " + kR3 +
                                  ": create payments, one per booking)"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "DROP COLUMN currency")) << r.out;
  EXPECT_TRUE(contains(r.out, "DROP TABLE payments")) << r.out;
  for (const auto& e : stdfs::directory_iterator(pj.app()))
    EXPECT_FALSE(contains(e.path().filename().string(), "emergency_backup")) << "a dry-run took a backup";
}

class AlembicSqlite : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tools_present(false)); }
};

class AlembicPg : public ::testing::Test {
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
    ASSERT_TRUE(tools_present(true));
    ASSERT_TRUE(unavailable_.empty()) << unavailable_ << " (install: scripts/install-deps.sh)";
    ASSERT_TRUE(server_) << "PostgreSQL did not start: " << start_error_;
  }
  static PgServer& pg() { return *server_; }
  // The password is written nowhere by runbook: not its output, not its journal.
  static void expect_no_password(const Project& pj, const CliResult& r) {
    EXPECT_FALSE(contains(r.out + r.err, PgServer::kPassword));
    auto show = pj.show_json();
    EXPECT_FALSE(contains(show.out, PgServer::kPassword));
    auto files = files_containing(pj.dir().path(), PgServer::kPassword);
    EXPECT_TRUE(files.empty()) << files.front();
  }
  static inline std::unique_ptr<PgServer> server_;
  static inline std::string unavailable_, start_error_;
};

}  // namespace

TEST_F(AlembicSqlite, DowngradeOneSeveralAndToARevisionLive) {
  Project pj;
  SqliteDb db(pj.app() + "/app.db");
  downgrade_one_several_and_to_a_revision(pj, db);
  // The backup of each run sits beside the database, at the revision it was taken at.
  int backups = 0;
  for (const auto& e : stdfs::directory_iterator(pj.app()))
    if (contains(e.path().filename().string(), "emergency_backup_")) {
      ++backups;
      std::string v = SqliteDb(e.path().string()).version();
      EXPECT_TRUE(v == kR4 || v == kR3 || v == kR1) << e.path() << " at " << v;
    }
  EXPECT_GE(backups, 1);
}

TEST_F(AlembicSqlite, FailedDowngradeStopsAtTheLastGoodRevision) {
  Project pj(true);
  SqliteDb db(pj.app() + "/app.db");
  failed_downgrade_stops_at_the_last_good_revision(pj, db);
}

TEST_F(AlembicSqlite, UnhealthyAppStopsAfterTheFirstDowngrade) {
  Project pj;
  SqliteDb db(pj.app() + "/app.db");
  unhealthy_app_stops_after_the_first_downgrade(pj, db);
}

TEST_F(AlembicSqlite, DryRunChangesNothingAndShowsTheRevisionsAndSql) {
  Project pj;
  stdfs::create_directories(pj.dir() / "data");
  std::string file = pj.dir() / "data/app.db";
  SqliteDb db(file);
  dry_run_changes_nothing(pj, db, &file);
}

// env.py reading another database than the runbook backs up is caught before anything changes.
TEST_F(AlembicSqlite, AlembicLookingAtAnotherDatabaseIsRefused) {
  Project pj;
  SqliteDb db(pj.app() + "/app.db");
  pj.upgrade_head(db);
  SqliteDb other(pj.app() + "/other.db");
  other.exec_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); "
                 "INSERT INTO alembic_version VALUES ('" + std::string(kR2) + "')");
  auto r = pj.runbook(other, {"steps=1", "db_url=" + db.url()});
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out + r.err, "alembic is looking at another database")) << r.out << r.err;
  EXPECT_EQ(db.version(), kR4);
  EXPECT_EQ(other.version(), kR2);
}

TEST_F(AlembicPg, DowngradeOneSeveralAndToARevisionLive) {
  Project pj;
  PgDb db(pg(), "mig_live");
  downgrade_one_several_and_to_a_revision(pj, db);
  // pg.dump's verified dump of the database before each run.
  int dumps = 0;
  for (const auto& e : stdfs::directory_iterator(pj.app()))
    if (contains(e.path().filename().string(), "emergency_backup_") && e.path().extension() == ".dump") ++dumps;
  EXPECT_GE(dumps, 1);
  auto last = pj.show_json();
  EXPECT_FALSE(contains(last.out, PgServer::kPassword));
  auto files = files_containing(pj.dir().path(), PgServer::kPassword);
  EXPECT_TRUE(files.empty()) << files.front();
}

TEST_F(AlembicPg, FailedDowngradeStopsAtTheLastGoodRevision) {
  Project pj(true);
  PgDb db(pg(), "mig_fail");
  failed_downgrade_stops_at_the_last_good_revision(pj, db);
}

TEST_F(AlembicPg, DryRunChangesNothingAndShowsTheRevisionsAndSql) {
  Project pj;
  PgDb db(pg(), "mig_dry");
  dry_run_changes_nothing(pj, db, nullptr);
  auto r = pj.runbook(db, {"steps=1"}, true);
  expect_no_password(pj, r);
}

// ---- restore and data modes, the app stopped and started through a real pm2 ---------------
// 003's "Restore from backup" (SQLite through the online backup API, PostgreSQL from the verified
// dump a downgrade took) and "Data migration rollback" (the worker stopped, the script, the
// integrity check, the worker started): the services are pm2 apps of a daemon of the test's own.
namespace {

struct Pm2Services {
  explicit Pm2Services(const Project& pj)
      : home(pj.dir() / "pm2"),
        apps(home, (write_file(pj.dir() / "sleep.js", "setInterval(() => {}, 1000);\n"),
                    pm2_ecosystem(pj.dir() / "apps.json", {{{"backend-v2", pj.dir() / "sleep.js", "", pj.dir().path()}},
                                                           {{"celery-worker", pj.dir() / "sleep.js", "", pj.dir().path()}}}))) {}
  std::map<std::string, std::string> env() const { return {{"PM2_HOME", home}}; }
  std::string home;
  Pm2Apps apps;
};

}  // namespace

TEST_F(AlembicSqlite, RestoreAndDataModesStopAndStartTheAppThroughPm2) {
  Project pj;
  SqliteDb db(pj.app() + "/app.db");
  pj.upgrade_head(db);
  db.exec_sql("INSERT INTO users (id, name, email) VALUES (1, 'ann', 'ann@example.org'), (2, 'bo', NULL)");
  db.exec_sql(".backup '" + pj.app() + "/backup_db_20261201_000000.db'");
  db.exec_sql("DELETE FROM users");
  Pm2Services svc(pj);
  auto before = svc.apps.apps();
  ASSERT_EQ(before["backend-v2"].status, "online") << svc.apps.pm2({"jlist"});
  auto r = pj.runbook(db, {"mode=restore", "backend=pm2"}, false, svc.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  record_run_time("003 alembic-rollback mode=restore db_kind=sqlite (pm2)", r);
  EXPECT_EQ(db.query("SELECT count(*) FROM users"), "2");
  EXPECT_TRUE(contains(r.out, "users: 0 rows before, 2 after")) << r.out;
  EXPECT_TRUE(contains(r.out, "database query time: ")) << r.out;
  auto after = svc.apps.apps();
  EXPECT_NE(after["backend-v2"].pid, before["backend-v2"].pid) << "the app was not stopped and started";
  EXPECT_EQ(after["backend-v2"].status, "online");
  EXPECT_EQ(after["celery-worker"].pid, before["celery-worker"].pid) << "a restore stops the app, not the worker";

  // The data rollback: the worker stopped while the script runs, the integrity check after.
  write_file(pj.app() + "/scripts/rollback_data.py",
             "import sqlite3\nc = sqlite3.connect('app.db')\nc.execute(\"UPDATE users SET email = NULL\")\nc.commit()\n");
  write_file(pj.app() + "/scripts/verify.py",
             "import sqlite3, sys\nn = sqlite3.connect('app.db').execute('SELECT count(*) FROM users WHERE email IS NOT NULL').fetchone()[0]\n"
             "print('users with an email:', n)\nsys.exit(1 if n else 0)\n");
  before = after;
  auto d = pj.runbook(db, {"mode=data", "backend=pm2", "data_script=python3,scripts/rollback_data.py",
                           "verify_script=python3,scripts/verify.py"},
                      false, svc.env());
  ASSERT_EQ(d.code, 0) << d.out << d.err;
  record_run_time("003 alembic-rollback mode=data (pm2)", d);
  EXPECT_EQ(db.query("SELECT count(*) FROM users WHERE email IS NOT NULL"), "0");
  after = svc.apps.apps();
  EXPECT_NE(after["celery-worker"].pid, before["celery-worker"].pid) << "the worker was not stopped and started";
  EXPECT_EQ(after["celery-worker"].status, "online");
  EXPECT_EQ(after["backend-v2"].pid, before["backend-v2"].pid) << "a data rollback stops the worker, not the app";
}

TEST_F(AlembicPg, RestoreFromTheDumpADowngradeTookThroughPm2) {
  Project pj;
  PgDb db(pg(), "mig_restore");
  pj.upgrade_head(db);
  db.exec_sql("INSERT INTO users (id, name, email) VALUES (1, 'ann', 'ann@example.org'), (2, 'bo', NULL)");
  auto down = pj.runbook(db, {"steps=1"});
  ASSERT_EQ(down.code, 0) << down.out << down.err;
  std::string dump;
  for (const auto& e : stdfs::directory_iterator(pj.app()))
    if (contains(e.path().filename().string(), "emergency_backup_") && e.path().extension() == ".dump") dump = e.path();
  ASSERT_FALSE(dump.empty()) << "the downgrade took no dump";
  db.exec_sql("DELETE FROM users");
  Pm2Services svc(pj);
  auto before = svc.apps.apps();
  auto r = pj.runbook(db, {"mode=restore", "backend=pm2", "backup=" + dump}, false, svc.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  record_run_time("003 alembic-rollback mode=restore db_kind=postgres (pm2)", r);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM users"), "2");
  EXPECT_EQ(db.version(), kR4) << "the dump was taken at head";
  auto after = svc.apps.apps();
  EXPECT_NE(after["backend-v2"].pid, before["backend-v2"].pid);
  EXPECT_EQ(after["backend-v2"].status, "online");
  EXPECT_TRUE(files_containing(pj.dir().path(), PgServer::kPassword).empty());
}
