// Every runbook in runbooks/ passes `runbook check`, and a dry-run of each of its procedures
// (levels, modes, methods) against a fixture environment built here exits 0, plans the changes
// that procedure is about, and changes nothing: the fixture tree hashes the same before and
// after, and the HTTP server saw no POST/PUT/DELETE.
//
// The fixture is one application checkout that all five source documents can act on: a git
// repository (good release v1.0.0 = branch `baseline`, bad release v1.1.0, a later bad commit on
// main, a bare `origin`), a real virtualenv, backups in the layout pre-deploy-backup writes,
// SQLite databases, env files, logs, and an HTTP server standing in for the app's API.
// PostgreSQL, Redis, pm2 and docker compose are not part of it: cases that need them run with
// --offline (probes planned too), which still checks parameters, branching and planning.
//
// A runbook without a case here fails the test by name: a new runbook must come with its fixture.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "os/process.h"
#include "support/support.h"

using namespace rb::test;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string label;
  std::vector<std::pair<std::string, std::string>> params;  // {app} {fx} {url} {bad} substituted
  bool offline = false;
  std::vector<std::string> planned;  // change effects this procedure must plan
};

// One entry per runbook file name.
const std::map<std::string, std::vector<Case>>& cases() {
  static const std::map<std::string, std::vector<Case>> all = [] {
    std::map<std::string, std::vector<Case>> m;
    const std::vector<std::pair<std::string, std::string>> dep = {
        {"app_dir", "{app}"},
        {"find_links", "{fx}/wheels"},
        {"no_index", "true"},
        {"backend_url", "{url}/health"},
        {"frontend_url", "{url}/api/health"},
        {"critical", "{url}/api/calculations/test"}};
    // base params with some added or replaced
    auto with = [](std::vector<std::pair<std::string, std::string>> base,
                   const std::vector<std::pair<std::string, std::string>>& more) {
      for (const auto& kv : more) {
        auto it = std::find_if(base.begin(), base.end(), [&](const auto& b) { return b.first == kv.first; });
        if (it != base.end()) it->second = kv.second;
        else base.push_back(kv);
      }
      return base;
    };
    m["dependency-rollback.lua"] = {
        {"L1 pin", with(dep, {{"level", "L1"}}), false, {"service.stop", "pip.pin", "service.start"}},
        {"L2 restore from backup", with(dep, {{"level", "L2"}}), false,
         {"fs.restore", "pip.restore", "pip.pin", "service.start"}},
        {"L3 fresh environment", with(dep, {{"level", "L3"}}), false,
         {"fs.remove", "pip.venv", "pip.install", "pip.pin", "npm.ci"}},
    };
    m["pre-deploy-backup.lua"] = {
        {"backup", {{"app_dir", "{app}"}, {"sqlite_db", "{app}/data/pcm_ops_tools.db"},
                    {"health", "{url}/health,{url}/api/health"}}, false,
         {"fs.mkdir", "fs.copy", "fs.write"}},
    };
    const std::vector<std::pair<std::string, std::string>> ff = {
        {"app_dir", "{app}"}, {"base_url", "{url}"}, {"token", "fixture-s3cret-token"},
        {"start_cmd", "python3,-m,http.server"}, {"log_file", "{app}/logs/pcm_ops_tools.log"}};
    m["feature-flag-rollback.lua"] = {
        {"investigate", with(ff, {{"method", "investigate"}}), false, {}},
        {"phase 1 flags", with(ff, {{"method", "flag"}, {"phase", "1"}}), false, {"http.post", "fs.write"}},
        {"phase 2 flags (restart)", with(ff, {{"method", "flag"}, {"phase", "2"}, {"flags", "extra_flag"}}), false,
         {"http.post", "service.restart"}},
        {"emergency endpoint", with(ff, {{"method", "emergency"}}), false, {"http.post"}},
        {"env rollback mode", with(ff, {{"method", "env"}}), false, {"fs.backup", "exec", "service.restart"}},
        {"git", with(ff, {{"method", "git"}, {"good_ref", "v1.0.0"}}), false,
         {"git.tag", "sqlite.backup", "service.stop", "git.checkout", "service.start"}},
        {"git over uncommitted work", with(ff, {{"app_dir", "{dirty}"}, {"method", "git"}, {"good_ref", "v1.0.0"}}), false,
         {"git.tag", "git.stash", "git.checkout"}},
        {"files", with(ff, {{"method", "files"}, {"good_ref", "v1.0.0"}, {"commit", "true"}}), false,
         {"git.tag", "git.checkout", "git.commit"}},
        {"database from the newest backup", with(ff, {{"method", "database"}}), false,
         {"sqlite.backup", "service.stop", "sqlite.restore", "service.start"}},
        {"database", with(ff, {{"method", "database"}, {"restore_from", "{app}/data/pcm_ops_tools_backup_20250101_000000.db"}}), false,
         {"sqlite.backup", "service.stop", "sqlite.restore", "service.start"}},
    };
    const std::vector<std::pair<std::string, std::string>> node = {
        {"repo", "{app}"}, {"base_url", "{url}"}, {"stable_ref", "v1.0.0"},
        {"app_log", "{app}/logs/pcm_ops_tools.log"}, {"backup_dir", "{fx}/pgdumps"},
        {"redis_url", "redis://127.0.0.1:1/0"}, {"dsn", "postgresql://app:pw@127.0.0.1:1/app"}};
    m["node-api-rollback.lua"] = {
        {"info", {{"repo", "{app}"}, {"base_url", "{url}"}, {"mode", "info"},
                  {"app_log", "{app}/logs/pcm_ops_tools.log"}}, false, {}},
        {"code", with(node, {{"mode", "code"}, {"dsn", ""}, {"monitor_for", "30m"}}), true,
         {"http.post", "git.checkout", "npm.ci", "npm.run", "service.restart"}},
        {"queue workers", with(node, {{"mode", "queue"}, {"dsn", ""}}), true,
         {"service.stop", "git.checkout", "npm.run", "service.start"}},
        {"cache pattern", with(node, {{"mode", "cache"}}), true, {"redis.delete_matching", "http.post"}},
        {"cache flush", with(node, {{"mode", "cache"}, {"cache_pattern", ""}}), true, {"redis.flush"}},
        {"frontend", with(node, {{"mode", "frontend"}, {"dsn", ""}}), true, {"git.checkout", "npm.ci", "service.restart"}},
        {"schema down migration", with(node, {{"mode", "schema"}, {"down_sql", "{app}/migrations/down.sql"}}), true,
         {"pg.dump", "http.post", "pg.exec"}},
        {"data correction", with(node, {{"mode", "data"}, {"since", "2025-11-07 10:00:00"},
                                        {"data_sql", "{app}/migrations/fix.sql"}}), true,
         {"pg.dump", "http.post", "pg.exec"}},
        {"restore from dump", with(node, {{"mode", "restore"}, {"dump", "{app}/dumps/backup.dump"}}), true,
         {"pg.dump", "pg.restore"}},
        {"backup", with(node, {{"mode", "backup"}, {"severity", "P3"}}), true, {"pg.dump"}},
    };
    const std::vector<std::pair<std::string, std::string>> alembic = {
        {"app_dir", "{app}"}, {"venv", "{app}/backend/venv"}, {"sqlite_db", "{app}/app.db"},
        {"health_url", "{url}/health"}};
    m["alembic-rollback.lua"] = {
        {"downgrade two, one at a time", with(alembic, {{"steps", "2"}}), false, {"sqlite.backup", "exec"}},
        {"downgrade to a revision", with(alembic, {{"target", "1975ea83b712"}}), false, {"sqlite.backup", "exec"}},
        {"restore sqlite with the app stopped", with(alembic, {{"mode", "restore"}}), true,
         {"sqlite.backup", "service.stop", "sqlite.restore", "service.start"}},
        {"restore postgres", with(alembic, {{"mode", "restore"}, {"db_kind", "postgres"},
                                            {"dsn", "postgresql://app:pw@127.0.0.1:1/app"},
                                            {"backup", "{app}/dumps/backup.dump"}}), true,
         {"pg.dump", "service.stop", "pg.restore"}},
        {"data migration rollback", with(alembic, {{"mode", "data"}, {"data_script", "python3,scripts/rollback_data_migration.py"}}),
         true, {"sqlite.backup", "service.stop", "exec", "service.start"}},
    };
    const std::vector<std::pair<std::string, std::string>> sys = {
        {"repo", "{app}"}, {"health", "{url}/health,{url}/api/v2/health"}, {"good_ref", "v1.0.0"}};
    m["system-rollback.lua"] = {
        {"revert", with(sys, {{"mode", "revert"}, {"commits", "{bad}"}, {"monitor_for", "60m"},
                              {"app_log", "{app}/logs/pcm_ops_tools.log"}}), false, {"git.tag", "git.revert"}},
        {"reset with backup branch and push", with(sys, {{"mode", "reset"}, {"push", "true"}}), false,
         {"git.tag", "git.branch", "git.reset", "git.push"}},
        {"complete system", with(sys, {{"mode", "system"}}), true,
         {"git.tag", "service.stop", "git.reset", "fs.restore", "service.start"}},
        {"services", with(sys, {{"mode", "services"}, {"services", "auth,payments,notifications"},
                                {"restore_env", "true"}, {"redis_url", "redis://127.0.0.1:1/0"}}), true,
         {"git.checkout", "fs.restore", "redis.flush", "service.restart"}},
        {"image tag", with(sys, {{"mode", "image"}, {"image", "ghcr.io/your-org/backend-v2"}, {"image_tag", "v1.4.2"}}), true,
         {"service.stop", "exec", "service.start"}},
        {"env file", with(sys, {{"mode", "env"}}), true, {"fs.restore", "service.restart"}},
    };
    const std::vector<std::pair<std::string, std::string>> sprint = {
        {"repo", "{app}"}, {"test_cmd", "python3,-c,print('3 passed')"}, {"backend_url", "{url}/health"},
        {"frontend_url", "{url}/"}, {"evidence_dir", "{fx}/rollbacks"}, {"venv", "{app}/backend/venv"},
        // A backend the fixture has (there is no uvicorn here): a start of a missing program
        // fails the rehearsal as it would fail the live run.
        {"backend_cmd", "python3,-c,import time; time.sleep(60)"}};
    m["sprint-rollback.lua"] = {
        // The __pycache__ dirs `find` lists after a planned reset and clean are unknown in a
        // rehearsal, so their removal is not planned (the live run finds and removes them).
        {"L1 full", with(sprint, {{"level", "L1"}}), false,
         {"service.stop", "git.branch", "git.checkout", "git.reset", "git.clean", "pip.install", "service.start"}},
        {"L1 full, ignored files too", with(sprint, {{"level", "L1"}, {"clean_ignored", "true"}, {"restart", "false"}}), false,
         {"git.reset", "git.clean"}},
        {"L2 sprint", with(sprint, {{"level", "L2"}, {"sprint", "3"}}), false, {"fs.write", "git.branch", "git.checkout"}},
        {"L3 selective", with(sprint, {{"level", "L3"}, {"files", "routers/auth.py,services/payment_service.py"}}), false,
         {"git.checkout"}},
        {"recover commits", with(sprint, {{"level", "recover"}, {"commits", "{bad}"}, {"failed_branch", "main"}}), false,
         {"git.branch", "git.cherry_pick"}},
        {"analyze", with(sprint, {{"level", "analyze"}}), false, {"fs.write"}},
        {"L2 sprint over uncommitted work", with(sprint, {{"repo", "{dirty}"}, {"level", "L2"}, {"sprint", "4"}}), false,
         {"git.commit", "git.branch", "git.checkout"}},
        {"L3 selective over uncommitted work", with(sprint, {{"repo", "{dirty}"}, {"level", "L3"}, {"files", "routers/auth.py"}}), false,
         {"git.stash", "git.checkout"}},
    };
    // The lead's general emergency rollback (runbooks/emergency.lua), aimed at this fixture
    // instead of the demo environment.
    m["emergency.lua"] = {
        {"to the last good release", {{"app", "{app}"}, {"good_ref", "v1.0.0"}, {"health", "{url}/health"},
                                      {"config", "{app}/backend/config"}, {"db", "{app}/data/pcm_ops_tools.db"},
                                      {"backups", "{fx}/emergency-backups"}}, false,
         {"git.tag", "service.stop", "fs.backup", "sqlite.backup", "git.checkout", "service.start"}},
    };
    m["pre-sprint-check.lua"] = {
        {"checks and checkpoint", {{"repo", "{app}"}, {"venv", "{app}/backend/venv"}, {"frontend_dir", ""},
                                   {"test_cmd", "python3,-c,print('3 passed')"}, {"incremental", "true"}}, false,
         {"git.tag"}},
    };
    return m;
  }();
  return all;
}

void run_ok(const std::vector<std::string>& argv, const std::string& cwd) {
  rb::os::ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = {{"GIT_AUTHOR_NAME", "fixture"}, {"GIT_AUTHOR_EMAIL", "fixture@example.com"},
              {"GIT_COMMITTER_NAME", "fixture"}, {"GIT_COMMITTER_EMAIL", "fixture@example.com"},
              {"GIT_CONFIG_GLOBAL", "/dev/null"}};
  spec.timeout = std::chrono::seconds(120);
  auto r = rb::os::run_process(spec);
  if (r.code != 0)
    throw std::runtime_error("fixture: " + argv[0] + " " + (argv.size() > 1 ? argv[1] : "") +
                             " failed: " + r.stderr_text + r.spawn_error);
}

std::string output_of(const std::vector<std::string>& argv, const std::string& cwd) {
  rb::os::ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  auto r = rb::os::run_process(spec);
  std::string s = r.stdout_text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const char* kSqliteSetup = R"PY(
import sqlite3, sys
def make(path, tables):
    db = sqlite3.connect(path)
    for t in tables:
        db.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany(f"INSERT INTO {t} (name) VALUES (?)", [(f"{t}-{i}",) for i in range(5)])
    db.commit()
    db.close()
root = sys.argv[1]
make(root + "/data/pcm_ops_tools.db", ["providers", "feature_flags"])
make(root + "/data/pcm_ops_tools_backup_20250101_000000.db", ["providers", "feature_flags"])
make(root + "/app.db", ["users", "appointments", "payments"])
make(root + "/backup_db_20250101.db", ["users", "appointments", "payments"])
)PY";

// A stand-in for alembic: answers the read-only questions; anything else (a downgrade) marks
// the fixture, so a dry-run that ran it would fail the unchanged-tree check.
const char* kFakeAlembic = R"SH(#!/bin/sh
case "$1" in
  current) echo "1975ea83b712 (head)" ;;
  history) echo "ae1027a6acf -> 1975ea83b712 (head), add payments"; echo "<base> -> ae1027a6acf, init" ;;
  *) echo "$*" >> "$(dirname "$0")/../../../ALEMBIC_RAN"; exit 1 ;;
esac
)SH";

class Fixture {
 public:
  Fixture() {
    fx_ = tmp_ / "fx";
    state_ = tmp_ / "state";
    fs::create_directories(state_);
    app_ = fx_ + "/app";
    server_ = std::make_unique<HttpServer>(tmp_ / "http");
    build_repo();
    build_untracked();
  }
  const std::string& fx() const { return fx_; }
  const std::string& app() const { return app_; }
  const std::string& state() const { return state_; }
  HttpServer& server() { return *server_; }
  std::string bad() const { return bad_; }

  std::string subst(std::string v) const {
    auto rep = [&](const std::string& key, const std::string& val) {
      for (size_t pos; (pos = v.find(key)) != std::string::npos;) v.replace(pos, key.size(), val);
    };
    rep("{app}", app_);
    rep("{fx}", fx_);
    rep("{url}", server_->url(""));
    rep("{bad}", bad_);
    rep("{dirty}", dirty_);
    return v;
  }

 private:
  void build_repo() {
    const std::string& a = app_;
    write_file(a + "/.gitignore",
               "backend/venv/\nbackups/\ndata/\nlogs/\n.env\n.env.backup\nrollbacks/\nnode_modules/\n.next/\n"
               "app.db\nbackup_db_*.db\ndumps/\nmigrations/\n__pycache__/\nALEMBIC_RAN\n");
    write_file(a + "/backend/requirements.txt", "jsonschema==4.25.0\npydantic-core==2.37.2\n");
    write_file(a + "/backend/app.py", "print('app v1.0.0')\n");
    write_file(a + "/backend/config/settings.ini", "[app]\nmode = good\n");
    write_file(a + "/backend/api/__init__.py", "");
    const std::string pkg = R"({"name":"fx","version":"1.0.0","scripts":{"build":"true","test:smoke":"true","dev":"true"}})";
    const std::string lock = R"({"name":"fx","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"fx","version":"1.0.0"}}})";
    write_file(a + "/package.json", pkg + "\n");
    write_file(a + "/package-lock.json", lock + "\n");
    write_file(a + "/frontend/package.json", pkg + "\n");
    write_file(a + "/frontend/package-lock.json", lock + "\n");
    for (const char* f : {"routers/auth.py", "services/auth_service.py", "routers/payments.py",
                          "services/payment_service.py", "routers/appointments.py",
                          "services/booking_service.py", "backend/src/queues/worker.ts"})
      write_file(a + "/" + f, std::string("# ") + f + " v1.0.0\n");
    write_file(a + "/docker-compose.yml",
               "services:\n  backend-v2:\n    image: ghcr.io/your-org/backend-v2:latest\n"
               "  frontend-v2:\n    image: ghcr.io/your-org/frontend-v2:latest\n");
    write_file(a + "/alembic.ini", "[alembic]\nscript_location = migrations\n");
    write_file(a + "/tests/unit/test_auth.py", "def test_auth():\n    assert True\n");
    run_ok({"git", "init", "-q", "-b", "main"}, a);
    run_ok({"git", "add", "-A"}, a);
    run_ok({"git", "commit", "-q", "-m", "release 1.0.0"}, a);
    run_ok({"git", "tag", "v1.0.0"}, a);
    run_ok({"git", "branch", "baseline"}, a);
    write_file(a + "/routers/auth.py", "# auth v1.1.0: broken sessions\n");
    write_file(a + "/services/payment_service.py", "# payments v1.1.0\n");
    write_file(a + "/backend/app.py", "print('app v1.1.0')\n");
    run_ok({"git", "commit", "-q", "-am", "release 1.1.0"}, a);
    run_ok({"git", "tag", "-a", "v1.1.0", "-m", "1.1.0"}, a);
    write_file(a + "/routers/appointments.py", "# appointments: a bad fix\n");
    write_file(a + "/tests/unit/test_appointments.py", "def test_appointments():\n    assert True\n");
    run_ok({"git", "add", "-A"}, a);
    run_ok({"git", "commit", "-q", "-m", "appointments fix"}, a);
    bad_ = output_of({"git", "rev-parse", "HEAD"}, a);
    run_ok({"git", "init", "-q", "--bare", fx_ + "/origin.git"}, fx_);
    run_ok({"git", "remote", "add", "origin", fx_ + "/origin.git"}, a);
    run_ok({"git", "push", "-q", "origin", "main", "baseline", "--tags"}, a);
    run_ok({"git", "fetch", "-q", "origin"}, a);
    // A second checkout with uncommitted work on the server: what stash, WIP commits and
    // backup branches are for.
    dirty_ = fx_ + "/dirty";
    run_ok({"git", "clone", "-q", a, dirty_}, fx_);
    run_ok({"git", "branch", "-q", "baseline", "origin/baseline"}, dirty_);
    write_file(dirty_ + "/routers/auth.py", "# auth: a hotfix made on the server\n");
    write_file(dirty_ + "/notes.txt", "untracked notes\n");
  }

  void build_untracked() {
    const std::string& a = app_;
    run_ok({"python3", "-m", "venv", a + "/backend/venv"}, a);
    // Warm the venv: the first pip run writes caches that a dry-run's probe must not be
    // blamed for.
    run_ok({a + "/backend/venv/bin/python", "-m", "pip", "list", "--format", "json",
            "--disable-pip-version-check"}, a);
    run_ok({a + "/backend/venv/bin/python", "-m", "pip", "check", "--disable-pip-version-check"}, a);
    run_ok({a + "/backend/venv/bin/python", "-m", "pip", "freeze", "--disable-pip-version-check"}, a);
    write_file(a + "/backend/venv/bin/alembic", kFakeAlembic);
    fs::permissions(a + "/backend/venv/bin/alembic", fs::perms::owner_all | fs::perms::group_read |
                                                         fs::perms::group_exec | fs::perms::others_read |
                                                         fs::perms::others_exec);
    std::string b = a + "/backups/pr-30-20250101-000000";
    write_file(b + "/requirements.txt.backup", "jsonschema==4.23.0\npydantic-core==2.33.2\n");
    write_file(b + "/config-backup/settings.ini", "[app]\nmode = good\n");
    write_file(b + "/app.py.backup", "print('app v1.0.0')\n");
    write_file(b + "/pip-freeze-backup.txt", "jsonschema==4.23.0\npydantic-core==2.33.2\n");
    fs::create_directories(a + "/data");
    run_ok({"python3", "-c", kSqliteSetup, a}, a);
    write_file(a + "/.env", "FEATURE_FLAG_ROLLBACK_MODE_ENABLED=false\nSTRIPE_SECRET_KEY=sk_test_new\n");
    write_file(a + "/.env.backup", "FEATURE_FLAG_ROLLBACK_MODE_ENABLED=false\nSTRIPE_SECRET_KEY=sk_test_old\n");
    write_file(a + "/logs/pcm_ops_tools.log",
               "INFO start\nINFO Feature flag xss_protection_enabled enabled\nERROR session store failed\n"
               "INFO request ok\nERROR exception in auth\n");
    write_file(a + "/migrations/down.sql",
               "DROP INDEX IF EXISTS idx_new_index;\nALTER TABLE projects DROP COLUMN IF EXISTS new_column;\n");
    write_file(a + "/dumps/backup.dump", "PGDMP fixture\n");
    write_file(a + "/migrations/fix.sql", "UPDATE projects SET state = 'live' WHERE id IN (1, 2, 3)\n");
    fs::create_directories(fx_ + "/wheels");
    // What the seed's requirements name, before and after the bad deploy: the live run installs
    // from here with no index, and so the rehearsal checks that it could.
    run_ok({"python3", RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py", fx_ + "/wheels", "jsonschema==4.23.0",
            "jsonschema==4.25.0", "pydantic-core==2.33.2", "pydantic-core==2.37.2"},
           fx_);
    write_file(a + "/backend/__pycache__/app.cpython-311.pyc", "cache");
    write_file(a + "/frontend/.next/BUILD_ID", "stale");
  }

  TempDir tmp_;
  std::string fx_, state_, app_, bad_, dirty_;
  std::unique_ptr<HttpServer> server_;
};

// Built once for the whole binary (a venv takes seconds) and torn down by the environment, so
// the HTTP server is stopped and the temp dir removed even when a test fails.
std::unique_ptr<Fixture> g_fixture;

struct FixtureEnvironment : ::testing::Environment {
  void TearDown() override { g_fixture.reset(); }
};
const auto* const kFixtureEnv = ::testing::AddGlobalTestEnvironment(new FixtureEnvironment);

Fixture& fixture() {
  if (!g_fixture) g_fixture = std::make_unique<Fixture>();
  return *g_fixture;
}

std::vector<std::string> runbook_files() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(std::string(RUNBOOK_SOURCE_DIR) + "/runbooks"))
    if (e.is_regular_file() && e.path().extension() == ".lua") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string name_of(const std::string& path) { return fs::path(path).filename().string(); }

struct ParamInfo {
  std::string type;
  bool has_default = false;
};

// The params `runbook check` lists: "  name  type [required] [secret] [default x]  — doc".
std::map<std::string, ParamInfo> declared_params(const std::string& check_out) {
  std::map<std::string, ParamInfo> out;
  bool in = false;
  std::istringstream ss(check_out);
  for (std::string line; std::getline(ss, line);) {
    if (line == "params:") { in = true; continue; }
    if (line == "steps:") break;
    if (!in) continue;
    std::istringstream ls(line);
    std::string name, type;
    ls >> name >> type;
    std::string rest = line.substr(0, line.find(" — "));
    out[name] = {type, rest.find(" default ") != std::string::npos};
  }
  return out;
}

std::map<std::string, std::string> cli_env(const Fixture& f) {
  return {{"RUNBOOK_JOURNAL", f.state() + "/journal.db"},
          {"HOME", f.state()},
          {"XDG_STATE_HOME", f.state() + "/xdg"},
          {"PM2_HOME", f.state() + "/pm2"}};
}

}  // namespace

TEST(Runbooks, EveryRunbookHasFixtureCases) {
  auto files = runbook_files();
  ASSERT_GE(files.size(), 8u) << "runbooks/ should hold the runbooks of all five source documents";
  for (const auto& f : files)
    EXPECT_TRUE(cases().count(name_of(f)))
        << "runbooks/" << name_of(f) << " has no dry-run case in tests/runbooks_test.cc: add its "
        << "fixture parameters there (every runbook must be rehearsed by this test)";
  for (const auto& [name, list] : cases()) {
    bool present = false;
    for (const auto& f : files) present = present || name_of(f) == name;
    EXPECT_TRUE(present) << "tests/runbooks_test.cc has cases for runbooks/" << name << ", which does not exist";
  }
}

TEST(Runbooks, CheckPasses) {
  for (const auto& f : runbook_files()) {
    auto r = run_cli({"check", f});
    EXPECT_EQ(r.code, 0) << name_of(f) << ":\n" << r.out << r.err;
    EXPECT_NE(r.out.find("steps:"), std::string::npos) << name_of(f);
  }
}

// A path or URL parameter left at its default would aim the rehearsal at this machine instead
// of the fixture (".", "http://127.0.0.1:5000"): every case must set each of them.
TEST(Runbooks, CasesPointEveryPathAndUrlAtTheFixture) {
  for (const auto& f : runbook_files()) {
    auto it = cases().find(name_of(f));
    if (it == cases().end()) continue;  // reported by EveryRunbookHasFixtureCases
    auto r = run_cli({"check", f});
    ASSERT_EQ(r.code, 0) << r.err;
    auto params = declared_params(r.out);
    for (const auto& c : it->second) {
      std::set<std::string> given;
      for (const auto& [k, v] : c.params) given.insert(k);
      for (const auto& [name, info] : params) {
        if ((info.type == "path" || info.type == "url") && info.has_default && !given.count(name))
          ADD_FAILURE() << name_of(f) << " [" << c.label << "]: " << info.type << " param '" << name
                        << "' keeps its default; point it into the fixture";
        if (info.type == "list" && info.has_default && !given.count(name) &&
            (name == "health" || name == "critical"))
          ADD_FAILURE() << name_of(f) << " [" << c.label << "]: URL list '" << name << "' keeps its default";
      }
    }
  }
}

TEST(Runbooks, DryRunOfEveryProcedureChangesNothing) {
  Fixture& fx = fixture();
  std::string before = sha256_tree(fx.fx());
  int requests_before = fx.server().changing_requests();
  for (const auto& f : runbook_files()) {
    auto it = cases().find(name_of(f));
    if (it == cases().end()) continue;
    for (const auto& c : it->second) {
      SCOPED_TRACE(name_of(f) + " [" + c.label + "]");
      std::vector<std::string> args = {"exec", f, "--dry-run", "--json"};
      if (c.offline) args.push_back("--offline");
      for (const auto& [k, v] : c.params) {
        args.push_back("-p");
        args.push_back(k + "=" + fx.subst(v));
      }
      auto r = run_cli(args, cli_env(fx), 300);
      std::string failure;
      std::multiset<std::string> planned;
      for (const auto& e : r.events()) {
        if (e.value("event", "") == "effect" && e.value("status", "") == "planned")
          planned.insert(e.value("name", ""));
        if (e.value("event", "") == "step_end" && e.value("outcome", "") == "failed")
          failure += "step " + std::to_string(e.value("step", 0)) + " '" + e.value("name", "") +
                     "': " + e.value("error", "") + "\n";
        if (e.value("event", "") == "effect" && e.value("status", "") == "ok" &&
            e.value("kind", "") == "change")
          ADD_FAILURE() << "a change effect was performed in a dry-run: " << e.dump();
      }
      EXPECT_EQ(r.code, 0) << failure << (failure.empty() ? r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0) + r.err : "");
      std::string planned_text;
      for (const auto& p : planned) planned_text += p + " ";
      if (r.code == 0) {
        for (const auto& name : c.planned)
          EXPECT_TRUE(planned.count(name)) << "the dry-run planned no " << name << "; planned: " << planned_text;
      }
      std::string now = sha256_tree(fx.fx());
      EXPECT_EQ(now, before) << "this dry-run changed the fixture";
      before = now;  // one culprit is named once, not every case after it
      EXPECT_EQ(fx.server().changing_requests(), requests_before) << "this dry-run sent POST/PUT/DELETE";
      requests_before = fx.server().changing_requests();
      // Secrets never reach the output (the journal's redaction has its own tests).
      EXPECT_EQ(r.out.find("fixture-s3cret-token"), std::string::npos);
      EXPECT_EQ(r.out.find("pw@127.0.0.1"), std::string::npos);
    }
  }
  EXPECT_FALSE(fs::exists(fx.app() + "/ALEMBIC_RAN")) << "a dry-run ran an alembic downgrade";
}

// Live, not only rehearsed: on a copy of the fixture's checkout, the selective rollback (004, L3)
// really restores the chosen file from the baseline and leaves the others alone; the flag
// rollback (001, phase 1) really sends its toggles to the app and reads them back disabled.
TEST(Runbooks, LiveSelectiveRollbackAndFlagToggleDoWhatTheyPlan) {
  Fixture& fx = fixture();
  TempDir copy;
  run_ok({"cp", "-a", fx.app(), copy / "app"}, copy.path());
  std::string app = copy / "app";
  std::string baseline_auth = output_of({"git", "show", "baseline:routers/auth.py"}, app);
  std::string head_payment = read_file(app + "/services/payment_service.py");
  ASSERT_NE(read_file(app + "/routers/auth.py"), baseline_auth + "\n") << "the fixture's HEAD should differ from baseline";
  auto r = run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/sprint-rollback.lua", "-p", "level=L3",
                    "-p", "repo=" + app, "-p", "files=routers/auth.py", "-p", "test_cmd=python3,-c,print('3 passed')",
                    "-p", "backend_url=" + fx.server().url("/health"), "-p", "frontend_url=" + fx.server().url("/"),
                    "-p", "evidence_dir=" + copy / "rollbacks", "-p", "venv=" + app + "/backend/venv",
                    "--journal", copy / "j.db"},
                   cli_env(fx), 300);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(output_of({"git", "show", "baseline:routers/auth.py"}, app), baseline_auth);
  EXPECT_EQ(read_file(app + "/routers/auth.py"), output_of({"git", "show", "baseline:routers/auth.py"}, app) + "\n");
  EXPECT_EQ(read_file(app + "/services/payment_service.py"), head_payment) << "a file not asked for was rolled back";

  int before = fx.server().changing_requests();
  auto f = run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/feature-flag-rollback.lua", "-p", "method=flag",
                    "-p", "phase=1", "-p", "app_dir=" + app, "-p", "base_url=" + fx.server().url(""),
                    "-p", "token=fixture-s3cret-token", "-p", "start_cmd=python3,-m,http.server",
                    "-p", "log_file=" + app + "/logs/pcm_ops_tools.log", "--journal", copy / "j.db"},
                   cli_env(fx), 300);
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  EXPECT_GT(fx.server().changing_requests(), before) << "no toggle reached the app";
  EXPECT_EQ(f.out.find("fixture-s3cret-token"), std::string::npos);
}
