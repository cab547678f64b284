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
#include <array>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "os/process.h"
#include "support/pg_server.h"
#include "support/pm2.h"
#include "support/redis_server.h"
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
        {"L1 pin with a critical check", with(dep, {{"level", "L1"}, {"with_frontend", "false"},
                                                    {"verify_cmd", "venv/bin/python,-c,import jsonschema; print('critical ok')"}}),
         false, {"service.stop", "pip.pin", "service.start"}},
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
        {"phase 3 flags", with(ff, {{"method", "flag"}, {"phase", "3"}}), false, {"http.post"}},
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
        // Live without any backup (LiveProcedure removes them), so the reinit command rebuilds it.
        {"database reinitialised", with(ff, {{"method", "database"},
                                             {"reinit", "python3,-c,import sqlite3; sqlite3.connect('data/pcm_ops_tools.db').execute('CREATE TABLE feature_flags(name TEXT)')"}}),
         false, {"sqlite.backup", "service.stop", "service.start"}},
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
         {"pg.dump", "http.post", "pg.script"}},
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
        {"downgrade to a revision", with(alembic, {{"target", "0c1d2e3f4a5b"}}), false, {"sqlite.backup", "exec"}},
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
        {"revert and push", with(sys, {{"mode", "revert"}, {"commits", "{bad}"}, {"push", "true"}}), false,
         {"git.tag", "git.revert", "git.push"}},
        {"reset with backup branch and push", with(sys, {{"mode", "reset"}, {"push", "true"}}), false,
         {"git.tag", "git.branch", "git.reset", "git.push"}},
        {"complete system", with(sys, {{"mode", "system"}}), true,
         {"git.tag", "service.stop", "git.reset", "fs.restore", "service.start"}},
        {"services", with(sys, {{"mode", "services"}, {"services", "auth,payments,notifications"},
                                {"restore_env", "true"}, {"redis_url", "redis://127.0.0.1:1/0"}}), true,
         {"git.checkout", "fs.restore", "redis.flush", "service.restart"}},
        {"image tag", with(sys, {{"mode", "image"}, {"image", "ghcr.io/your-org/backend-v2"}, {"image_tag", "v1.4.2"}}), true,
         {"service.stop", "compose.set_image", "service.start"}},
        {"env file", with(sys, {{"mode", "env"}}), true, {"fs.restore", "service.restart"}},
    };
    const std::vector<std::pair<std::string, std::string>> sprint = {
        {"repo", "{app}"}, {"test_cmd", "python3,-c,print('3 passed')"}, {"backend_url", "{url}/health"},
        {"frontend_url", "{url}/"}, {"evidence_dir", "{fx}/rollbacks"}, {"venv", "{app}/backend/venv"},
        {"find_links", "{fx}/wheels"}, {"no_index", "true"},
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
    m["assess.lua"] = {
        {"000 alert level", {{"procedure", "dependencies"}, {"health", "{url}/health"}, {"endpoints", "{url}/api/a,{url}/api/b"},
                             {"sample_url", "{url}/health"}, {"samples", "5"}, {"baseline_p95_ms", "50"},
                             {"log_file", "{app}/logs/pcm_ops_tools.log"}, {"test_cmd", "python3,-c,print('3 passed')"},
                             {"sqlite_db", "{app}/data/pcm_ops_tools.db"}}, false, {}},
        {"001 matrix", {{"procedure", "feature-flags"}, {"health", "{url}/api/health"}, {"auth_url", "{url}/api/auth/me"},
                        {"sqlite_db", "{app}/data/pcm_ops_tools.db"}}, false, {}},
        {"002 matrix", {{"procedure", "node-api"}, {"health", "{url}/health"}, {"sample_url", "{url}/health"}, {"samples", "5"},
                        {"queue_stats", "{url}/api/queue/stats"}}, false, {}},
        {"004 matrix", {{"procedure", "sprint"}, {"health", "{url}/health"}, {"test_cmd", "python3,-c,print('3 passed')"},
                        {"test_dir", "{app}"}}, false, {}},
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
db = sqlite3.connect(root + "/app.db")
db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
db.execute("INSERT INTO alembic_version VALUES ('1975ea83b712')")
db.commit()
db.close()
)PY";

// A stand-in for alembic: answers the read-only questions; anything else (a downgrade) marks
// the fixture, so a dry-run that ran it would fail the unchanged-tree check.
const char* kFakeAlembic = R"SH(#!/bin/sh
case "$1" in
  current) echo "1975ea83b712 (head)" ;;
  history) echo "ae1027a6acf -> 1975ea83b712 (head), add payments"; echo "0c1d2e3f4a5b -> ae1027a6acf, add users.email"; echo "<base> -> 0c1d2e3f4a5b, init" ;;
  downgrade) if [ "$3" = "--sql" ]; then echo "DROP TABLE payments;"; exit 0; fi; echo "$*" >> "$(dirname "$0")/../../../ALEMBIC_RAN"; exit 1 ;;
  *) echo "$*" >> "$(dirname "$0")/../../../ALEMBIC_RAN"; exit 1 ;;
esac
)SH";

const char* const APP_PY_TEMPLATE = R"PY(# app v%s: the fixture's backend. It serves tests/support/http_server.py on the port in
# data/<argv[1] or app_port> of the checkout (the frontend's `npm run dev` runs it with frontend_port).
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
name = sys.argv[1] if len(sys.argv) > 1 else "app_port"
port = open(os.path.join(root, "data", name)).read().strip()
state = os.path.join(root, "data", name + "_state")
os.makedirs(state, exist_ok=True)
sys.argv = ["http_server.py", port, state]
runpy.run_path(RUNBOOK_TEST_SUPPORT_DIR_PY + "/http_server.py", run_name="__main__")
)PY";

// The fixture's backend/app.py of a release: a real server (see app_py's text) on its own port.
std::string app_py(const std::string& version) {
  std::string t = APP_PY_TEMPLATE;
  t.replace(t.find("%s"), 2, version);
  std::string key = "RUNBOOK_TEST_SUPPORT_DIR_PY";
  t.replace(t.find(key), key.size(), std::string("\"") + RUNBOOK_TEST_SUPPORT_DIR + "\"");
  return t;
}

class Fixture {
 public:
  Fixture() {
    fx_ = tmp_ / "fx";
    state_ = tmp_ / "state";
    fs::create_directories(state_);
    app_ = fx_ + "/app";
    server_ = std::make_unique<HttpServer>(tmp_ / "http");
    app_port_ = free_port();
    front_port_ = free_port();
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
    rep("{app_url}", "http://127.0.0.1:" + std::to_string(app_port_));
    rep("{front_url}", "http://127.0.0.1:" + std::to_string(front_port_));
    return v;
  }
  int app_port() const { return app_port_; }
  int front_port() const { return front_port_; }
  const std::string& dirty() const { return dirty_; }

 private:
  void build_repo() {
    const std::string& a = app_;
    write_file(a + "/.gitignore",
               "backend/venv/\nbackups/\ndata/\nlogs/\n.env\n.env.backup\nrollbacks/\nnode_modules/\n.next/\n"
               "app.db\nbackup_db_*.db\ndumps/\nmigrations/\n__pycache__/\nALEMBIC_RAN\n");
    write_file(a + "/backend/requirements.txt", "jsonschema==4.25.0\npydantic-core==2.37.2\n");
    write_file(a + "/backend/app.py", app_py("1.0.0"));
    write_file(a + "/backend/config/settings.ini", "[app]\nmode = good\n");
    write_file(a + "/backend/api/__init__.py", "");
    const std::string pkg = R"({"name":"fx","version":"1.0.0","scripts":{"build":"mkdir -p .next/static && echo built > .next/static/app.js","test:smoke":"true","test:e2e":"echo critical flows ok > e2e-ran","dev":"python3 ../backend/app.py frontend_port"}})";
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
    write_file(a + "/backend/app.py", app_py("1.1.0"));
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
    write_file(b + "/app.py.backup", app_py("1.0.0"));
    write_file(b + "/pip-freeze-backup.txt", "jsonschema==4.23.0\npydantic-core==2.33.2\n");
    fs::create_directories(a + "/data");
    run_ok({"python3", "-c", kSqliteSetup, a}, a);
    for (const std::string& root : {a, dirty_}) {
      write_file(root + "/data/app_port", std::to_string(app_port_) + "\n");
      write_file(root + "/data/frontend_port", std::to_string(front_port_) + "\n");
    }
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
  int app_port_ = 0, front_port_ = 0;
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
    // (A runbook's `_test.lua` beside it is its `runbook test` file: tests/shipped_runbooks_test.cc.)
    if (e.is_regular_file() && e.path().extension() == ".lua" &&
        !e.path().filename().string().ends_with("_test.lua"))
      out.push_back(e.path().string());
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
        if (e.value("type", "") == "effect" && e.value("status", "") == "planned")
          planned.insert(e.value("name", ""));
        if (e.value("type", "") == "step_end" && e.value("outcome", "") == "failed")
          failure += "step " + std::to_string(e.value("step", 0)) + " '" + e.value("name", "") +
                     "': " + e.value("error", "") + "\n";
        if (e.value("type", "") == "effect" && e.value("status", "") == "ok" &&
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
  record_run_time("004 sprint-rollback L3 selective", r);
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
  record_run_time("001 feature-flag-rollback method=flag phase 1", f);
  EXPECT_GT(fx.server().changing_requests(), before) << "no toggle reached the app";
  EXPECT_EQ(f.out.find("fixture-s3cret-token"), std::string::npos);
}

// 002 §4.2 live, against a real pm2 and the queue API's behaviour: the queues are paused, the
// active jobs drain before the workers stop, the failed jobs are kept (no clean-all unless asked),
// the worker code goes back to the stable release, and the queues resume one by one, each
// watched; a queue whose failure rate is above the limit after its resume is paused again and
// the ones after it stay paused.
namespace {

struct QueueApi {
  QueueApi(const std::string& dir, const std::string& queues_json) : dir_(dir), port_(free_port()) {
    write_file(dir + "/queues.json", queues_json);
    child_ = std::make_unique<Child>(std::vector<std::string>{
        "python3", std::string(RUNBOOK_TEST_SUPPORT_DIR) + "/queue_api.py", std::to_string(port_), dir});
    if (!wait_for_port(port_, 10000)) ADD_FAILURE() << "queue_api.py did not start (apt-get install python3)";
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> posts() const {
    std::vector<std::string> out;
    std::istringstream in(read_file(dir_ + "/requests.log"));
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  std::string dir_;
  int port_;
  std::unique_ptr<Child> child_;
};


size_t index_of(const std::vector<std::string>& lines, const std::string& needle) {
  for (size_t i = 0; i < lines.size(); ++i)
    if (lines[i].find(needle) != std::string::npos) return i;
  return std::string::npos;
}

}  // namespace

TEST(Runbooks, LiveQueueRollbackDrainsKeepsEvidenceAndResumesOneByOne) {
  Fixture& fx = fixture();
  TempDir copy;
  run_ok({"cp", "-a", fx.app(), copy / "app"}, copy.path());
  std::string app = copy / "app";
  write_file(app + "/backend/src/queues/worker.ts", "# worker: the bad loop\n");
  run_ok({"git", "commit", "-q", "-am", "bad worker"}, app);
  write_file(copy / "worker.js", "setInterval(() => {}, 1000);\n");
  Pm2Apps worker(fx.state() + "/pm2", pm2_ecosystem(copy / "apps.json", {{{"queue-worker", copy / "worker.js", "", copy.path()}}}));
  // 002 §7: the start, progress and end notices go to a (local) Slack-style webhook.
  HttpServer chat(copy / "chat");
  std::string hook = chat.url("/services/T01/B02/n0tify-t0ken-xyz");
  auto node = [&](const std::string& url, const std::string& journal, const std::vector<std::string>& more = {}) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/node-api-rollback.lua", "-p", "mode=queue",
                                     "-p", "repo=" + app, "-p", "stable_ref=v1.0.0", "-p", "base_url=" + url, "-p", "dsn=",
                                     "-p", "resume_watch=4s", "-p", "drain_within=2m", "-p", "issue=ai-analysis jobs fail",
                                     "-p", "notify_webhook=" + hook, "--journal", journal};
    args.insert(args.end(), more.begin(), more.end());
    return run_cli(args, cli_env(fx), 600);
  };
  auto notices = [&] {
    std::vector<std::string> out;
    std::istringstream in(read_file(copy / "chat/requests.log"));
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(rb::json::parse(rb::json::parse(line)["body"].get<std::string>())["text"]);
    return out;
  };
  {
    QueueApi q(copy / "api1", R"({"ai-analysis": {"waiting": 20, "active": 3, "failed": 4},
                                 "document-processing": {"waiting": 10, "active": 2}})");
    auto r = node(q.url(), copy / "j1.db");
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    record_run_time("002 node-api-rollback mode=queue (drain, 2 queues watched 4s each)", r);
    auto posts = q.posts();
    size_t pause = index_of(posts, "/api/queue/pause-all"), a = index_of(posts, "/api/queue/ai-analysis/resume"),
           d = index_of(posts, "/api/queue/document-processing/resume");
    ASSERT_NE(pause, std::string::npos) << r.out;
    ASSERT_NE(a, std::string::npos) << r.out;
    ASSERT_NE(d, std::string::npos) << r.out;
    EXPECT_LT(pause, a);
    EXPECT_LT(a, d) << "the queues resume one at a time, ai-analysis first";
    EXPECT_EQ(index_of(posts, "clean-all"), std::string::npos) << "the failed jobs are evidence: no clean-all unless asked";
    EXPECT_EQ(index_of(posts, "resume-all"), std::string::npos);
    // By the time the first queue resumed, nothing was active any more: the drain happened.
    EXPECT_NE(posts[a].find("\"active\": 0"), std::string::npos) << posts[a];
    EXPECT_NE(r.out.find("drained: ai-analysis: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("failed jobs kept as evidence"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("6.4 metric targets met"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("error rate: 0 of 50 requests (0 %)"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(app + "/backend/src/queues/worker.ts"), "# backend/src/queues/worker.ts v1.0.0\n");
    EXPECT_NE(worker.pm2({"jlist"}).find("\"status\":\"online\""), std::string::npos) << "the worker is not back online";
    auto n = notices();
    ASSERT_EQ(n.size(), 3u) << r.out;
    EXPECT_NE(n[0].find("[ACTION] Initiating Rollback - ai-analysis jobs fail"), std::string::npos) << n[0];
    EXPECT_NE(n[1].find("[UPDATE] Rollback in Progress - "), std::string::npos) << n[1];
    EXPECT_NE(n[1].find("Current Step: Restart the services"), std::string::npos) << n[1];
    EXPECT_NE(n[2].find("[RESOLVED] Rollback Complete - Service Restored"), std::string::npos) << n[2];
    EXPECT_NE(n[2].find("resumed ai-analysis"), std::string::npos) << n[2];
    for (const char* f : {"j1.db", "j1.db-wal"}) {
      if (std::filesystem::exists(copy / f)) {
        EXPECT_EQ(read_file(copy / f).find("n0tify-t0ken-xyz"), std::string::npos) << "the webhook token is in " << f;
      }
    }
  }
  {
    // The rolled-back worker still fails half its jobs on ai-analysis: it is paused again, and
    // document-processing is never resumed.
    QueueApi q(copy / "api2", R"({"ai-analysis": {"waiting": 20, "active": 1, "fail_rate": 0.5},
                                 "document-processing": {"waiting": 10}})");
    auto r = node(q.url(), copy / "j2.db");
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    auto posts = q.posts();
    size_t a = index_of(posts, "/api/queue/ai-analysis/resume"), again = index_of(posts, "/api/queue/ai-analysis/pause");
    ASSERT_NE(a, std::string::npos) << r.out;
    ASSERT_NE(again, std::string::npos) << "the failing queue was not paused again\n" << r.out;
    EXPECT_LT(a, again);
    EXPECT_EQ(index_of(posts, "document-processing/resume"), std::string::npos) << "the next queue was resumed";
    EXPECT_NE((r.out + r.err).find("queue ai-analysis: failure rate"), std::string::npos) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("still paused: document-processing"), std::string::npos) << r.out << r.err;
    auto n = notices();
    ASSERT_EQ(n.size(), 6u) << r.out;
    EXPECT_NE(n[5].find("[FAILED] Rollback did not complete"), std::string::npos) << n[5];
    EXPECT_NE(n[5].find("queue ai-analysis: failure rate"), std::string::npos) << n[5];
  }
  {
    // Checkpoint 3's "no stuck jobs": after its resume nothing on ai-analysis moves with jobs
    // waiting; it is paused again. And clean_failed=true (4.2 step 4, "if needed") cleans the
    // failed jobs once the active ones have drained, before the workers stop.
    QueueApi q(copy / "api3", R"({"ai-analysis": {"waiting": 10, "failed": 3, "stuck": true},
                                 "document-processing": {"waiting": 4}})");
    auto r = node(q.url(), copy / "j3.db", {"-p", "clean_failed=true"});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    auto posts = q.posts();
    size_t clean = index_of(posts, "/api/queue/clean-all"), a = index_of(posts, "/api/queue/ai-analysis/resume"),
           again = index_of(posts, "/api/queue/ai-analysis/pause");
    ASSERT_NE(clean, std::string::npos) << "clean_failed=true sent no clean-all\n" << r.out;
    ASSERT_NE(a, std::string::npos) << r.out;
    EXPECT_LT(clean, a);
    ASSERT_NE(again, std::string::npos) << "the stuck queue was not paused again\n" << r.out;
    EXPECT_NE((r.out + r.err).find("stuck jobs?"), std::string::npos) << r.out << r.err;
    EXPECT_EQ(index_of(posts, "document-processing/resume"), std::string::npos) << "the next queue was resumed";
    EXPECT_NE(r.out.find("failed jobs cleaned (clean_failed=true)"), std::string::npos) << r.out;
  }
  {
    // Checkpoint 3's "processing time normal": jobs move, but slower than the normal rate given.
    QueueApi q(copy / "api4", R"({"ai-analysis": {"waiting": 40}, "document-processing": {"waiting": 4}})");
    auto r = node(q.url(), copy / "j4.db", {"-p", "min_jobs_per_min=100000"});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("processing is slow: "), std::string::npos) << r.out << r.err;
    EXPECT_NE(r.out.find(" per minute), 0 failed"), std::string::npos) << r.out;
    EXPECT_NE(index_of(q.posts(), "/api/queue/ai-analysis/pause"), std::string::npos) << "the slow queue was not paused again";
  }
}

// 001 "Partial Rollback (Specific Files)" live: every file that differs from the good release goes
// back, a file the bad release added is removed (kept in the artifacts), the tests run before the
// commit and decide it; failing tests leave the rollback uncommitted.
TEST(Runbooks, LiveFilesRollbackRemovesAddedFilesTestsThenCommits) {
  Fixture& fx = fixture();
  auto run = [&](const std::string& app, const std::string& test_cmd, const std::string& journal) {
    return run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/feature-flag-rollback.lua",
                    "-p", "method=files", "-p", "good_ref=v1.0.0", "-p", "commit=true", "-p", "reason=auth broken",
                    "-p", "app_dir=" + app, "-p", "base_url=" + fx.server().url(""), "-p", "test_cmd=" + test_cmd,
                    "-p", "log_file=" + app + "/logs/pcm_ops_tools.log", "--journal", journal},
                   cli_env(fx), 300);
  };
  {
    TempDir copy;
    run_ok({"cp", "-a", fx.app(), copy / "app"}, copy.path());
    std::string app = copy / "app";
    ASSERT_TRUE(fs::exists(app + "/tests/unit/test_appointments.py")) << "the fixture's bad release adds this file";
    std::string head_before = output_of({"git", "rev-parse", "HEAD"}, app);
    // The test command records what it saw: the tree already rolled back, HEAD not yet committed.
    std::string tc = "sh,-c,git rev-parse HEAD > ../tests_saw_head; cat routers/auth.py > ../tests_saw_auth; echo 3 passed";
    auto r = run(app, tc, copy / "j.db");
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    record_run_time("001 feature-flag-rollback method=files + tests + commit", r);
    EXPECT_EQ(read_file(copy / "tests_saw_head"), head_before + "\n") << "the tests ran after the commit";
    EXPECT_EQ(read_file(copy / "tests_saw_auth"), "# routers/auth.py v1.0.0\n");
    EXPECT_FALSE(fs::exists(app + "/tests/unit/test_appointments.py")) << "the added file is still there";
    EXPECT_EQ(output_of({"git", "diff", "--stat", "v1.0.0", "HEAD"}, app), "") << "HEAD's tree is not v1.0.0's";
    EXPECT_EQ(output_of({"git", "status", "--porcelain", "--untracked-files=no"}, app), "");
    EXPECT_NE(output_of({"git", "rev-parse", "HEAD"}, app), head_before) << "nothing was committed";
    EXPECT_NE(output_of({"git", "log", "-1", "--format=%s"}, app).find("Partial rollback to v1.0.0: auth broken"),
              std::string::npos);
  }
  {
    TempDir copy;
    run_ok({"cp", "-a", fx.app(), copy / "app"}, copy.path());
    std::string app = copy / "app";
    std::string head_before = output_of({"git", "rev-parse", "HEAD"}, app);
    auto r = run(app, "sh,-c,echo 1 failed; exit 1", copy / "j.db");
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("tests failed after restoring the files"), std::string::npos) << r.out << r.err;
    EXPECT_EQ(output_of({"git", "rev-parse", "HEAD"}, app), head_before) << "failing tests must not be committed";
    EXPECT_EQ(read_file(app + "/routers/auth.py"), "# routers/auth.py v1.0.0\n") << "the restored files stay for inspection";
  }
}

// The triggers measured live against a local app: a healthy one is GREEN / P3, one whose health
// answers 503 is RED / P0 — with the numbers — and `runbook report` names that as the trigger.
TEST(Runbooks, LiveAssessmentMeasuresAndNamesTheLevel) {
  Fixture& fx = fixture();
  TempDir d;
  auto assess = [&](const std::string& procedure) {
    return run_cli({"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/assess.lua", "-p", "procedure=" + procedure,
                    "-p", "health=" + fx.server().url("/health"), "-p", "endpoints=" + fx.server().url("/api/projects"),
                    "-p", "sample_url=" + fx.server().url("/health"), "-p", "samples=10",
                    "-p", "log_file=" + fx.app() + "/logs/pcm_ops_tools.log",                     "-p", "baseline_log_errors=5", "-p", "sqlite_db=" + fx.app() + "/data/pcm_ops_tools.db",
                    "--journal", d / "j.db"},
                   cli_env(fx), 120);
  };
  auto green = assess("dependencies");
  ASSERT_EQ(green.code, 0) << green.out << green.err;
  record_run_time("000 assess (alert level)", green);
  EXPECT_NE(green.out.find("Level: GREEN"), std::string::npos) << green.out;
  EXPECT_NE(green.out.find("error rate: 0 of 10 requests (0 %)"), std::string::npos) << green.out;
  EXPECT_NE(green.out.find("log: 2 error lines"), std::string::npos) << green.out;
  fx.server().set_status(503);
  auto red = assess("dependencies");
  auto p0 = assess("node-api");
  fx.server().set_status(200);
  ASSERT_EQ(red.code, 0) << red.out << red.err;
  EXPECT_NE(red.out.find("Level: RED"), std::string::npos) << red.out;
  EXPECT_NE(red.out.find("critical system failure: the application does not answer"), std::string::npos) << red.out;
  EXPECT_NE(p0.out.find("Level: P0"), std::string::npos) << p0.out;
  EXPECT_NE(p0.out.find("API completely down"), std::string::npos) << p0.out;
  auto rep = run_cli({"report", "2", "--journal", d / "j.db"}, cli_env(fx));
  EXPECT_NE(rep.out.find("Trigger: RED: immediate rollback"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("| health_up | 0 |"), std::string::npos) << rep.out;
}

// Live, every procedure that needs nothing beyond the fixture: each case of the dry-run table
// above runs for real on a fixture of its own (a fresh checkout, venv, wheels, backups, HTTP
// server), and must succeed and perform every change its rehearsal is checked to plan. The
// services it starts (the fixture's app, `npm run dev`) are killed after, found by their cwd.
namespace {

struct LiveCase {
  std::string runbook, label;
  std::vector<std::pair<std::string, std::string>> extra;  // overrides for the live run
  bool by_hand = false;  // start the bad release's backend and frontend by hand first
  std::vector<std::string> files = {};  // file names the run must leave somewhere under the fixture
  std::string remove = "";              // a glob under the app removed before the run ("data/*_backup_*.db")
  std::string expect_out = "";          // a line the run must print
};

// gtest prints a parameter's bytes unless told otherwise: the case's name, for ctest's listing.
void PrintTo(const LiveCase& c, std::ostream* os) { *os << c.runbook << " [" << c.label << "]"; }

std::string live_name(const ::testing::TestParamInfo<LiveCase>& i) {
  std::string n = i.param.runbook.substr(0, i.param.runbook.size() - 4) + "_" + i.param.label;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

// Kills every process whose cwd is under `dir` (the services a live run left running).
void kill_under(const std::string& dir) {
  for (int round = 0; round < 3; ++round) {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string name = e.path().filename().string();
      if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
      std::error_code ec;
      auto cwd = fs::read_symlink(e.path() / "cwd", ec).string();
      if (!ec && cwd.rfind(dir, 0) == 0) ::kill(std::stoi(name), SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

class LiveProcedure : public ::testing::TestWithParam<LiveCase> {};

// The app's URLs in the live runs: its own port, served by backend/app.py (and the frontend's
// `npm run dev`), not by the fixture's HTTP server, so adopting by the health URL's port stops the
// app and nothing else.
using Params = std::vector<std::pair<std::string, std::string>>;
const Params kDep = {{"backend_url", "{app_url}/health"}, {"critical", "{app_url}/api/calculations/test"},
                     {"frontend_url", "{front_url}/api/health"}};
const Params kFlag = {{"base_url", "{app_url}"}, {"start_cmd", "python3,backend/app.py"}};
const Params kSprint = {{"backend_url", "{app_url}/health"}, {"frontend_url", "{front_url}/"},
                        {"backend_cmd", "python3,app.py"}};

}  // namespace

TEST_P(LiveProcedure, RunsAndDoesWhatItsRehearsalPlanned) {
  const LiveCase& lc = GetParam();
  auto it = cases().find(lc.runbook);
  ASSERT_NE(it, cases().end());
  const Case* c = nullptr;
  for (const auto& k : it->second)
    if (k.label == lc.label) c = &k;
  ASSERT_NE(c, nullptr) << "no dry-run case '" << lc.label << "' for " << lc.runbook;
  Fixture fx;
  struct Reaper {
    std::string dir;
    ~Reaper() { kill_under(dir); }
  } reaper{fs::path(fx.fx()).parent_path().string()};
  // The bad release runs as the seeds start it, by hand (`python app.py &`, `npm run dev &`):
  // no pidfile, so the runbook must find it by its port.
  std::vector<std::unique_ptr<Child>> by_hand;
  if (lc.by_hand) {
    std::string root = lc.label.find("uncommitted") != std::string::npos ? fx.dirty() : fx.app();
    by_hand.push_back(std::make_unique<Child>(
        std::vector<std::string>{"sh", "-c", "cd '" + root + "' && exec python3 backend/app.py"}, std::map<std::string, std::string>{},
        fs::path(fx.fx()).parent_path().string() + "/by-hand-backend.log"));
    by_hand.push_back(std::make_unique<Child>(
        std::vector<std::string>{"sh", "-c", "cd '" + root + "/frontend' && exec python3 ../backend/app.py frontend_port"},
        std::map<std::string, std::string>{}, fs::path(fx.fx()).parent_path().string() + "/by-hand-frontend.log"));
    ASSERT_TRUE(wait_for_port(fx.app_port(), 15000)) << "the by-hand backend did not start";
    ASSERT_TRUE(wait_for_port(fx.front_port(), 15000)) << "the by-hand frontend did not start";
  }
  if (!lc.remove.empty()) {
    std::string pattern = lc.remove;
    size_t slash = pattern.rfind('/');
    std::string dir = fx.app() + "/" + pattern.substr(0, slash);
    std::regex re(std::regex_replace(pattern.substr(slash + 1), std::regex(R"(\*)"), ".*"));
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir))
      if (std::regex_match(e.path().filename().string(), re)) n += fs::remove(e.path()) ? 1 : 0;
    ASSERT_GT(n, 0) << "nothing matched " << lc.remove;
  }
  auto params = c->params;
  for (const auto& kv : lc.extra) {
    auto p = std::find_if(params.begin(), params.end(), [&](const auto& b) { return b.first == kv.first; });
    if (p != params.end()) p->second = kv.second;
    else params.push_back(kv);
  }
  std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/" + lc.runbook, "--json", "--yes"};
  auto env = cli_env(fx);
  // {pg}: a real PostgreSQL (one per test process), its DSN given through the environment
  // channel, as a secret should be.
  static std::unique_ptr<PgServer> pg;
  for (const auto& [k, v] : params) {
    if (v == "{pg}") {
      ASSERT_EQ(PgServer::unavailable(), "") << " (install: scripts/install-deps.sh)";
      if (!pg) pg = std::make_unique<PgServer>();
      std::string name = k;
      for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      env["RUNBOOK_PARAM_" + name] = pg->dsn();
      continue;
    }
    args.push_back("-p");
    args.push_back(k + "=" + fx.subst(v));
  }
  env["npm_config_offline"] = "true";
  env["npm_config_audit"] = "false";
  env["npm_config_fund"] = "false";
  auto r = run_cli(args, env, 600);
  std::multiset<std::string> done;
  std::string failure;
  for (const auto& e : r.events()) {
    if (e.value("type", "") == "effect" && e.value("status", "") == "ok" && e.value("kind", "") == "change")
      done.insert(e.value("name", ""));
    if (e.value("type", "") == "step_end" && e.value("outcome", "") == "failed")
      failure += "step " + std::to_string(e.value("step", 0)) + " '" + e.value("name", "") + "': " +
                 e.value("error", "") + "\n";
  }
  ASSERT_EQ(r.code, 0) << failure << r.out.substr(r.out.size() > 4000 ? r.out.size() - 4000 : 0) << r.err;
  std::string done_text;
  for (const auto& n : done) done_text += n + " ";
  for (const auto& name : c->planned)
    EXPECT_TRUE(done.count(name)) << "the live run performed no " << name << "; performed: " << done_text;
  EXPECT_EQ(r.out.find("fixture-s3cret-token"), std::string::npos);
  for (const auto& [k, v] : lc.extra) {
    if (k != "notify_webhook") continue;
    std::string posted = read_file(fs::path(fx.state()).parent_path().string() + "/http/requests.log");
    EXPECT_NE(posted.find("/hooks/chat"), std::string::npos) << "no notice reached the webhook";
    EXPECT_NE(posted.find("NEXT STEPS"), std::string::npos) << posted;
    EXPECT_NE(posted.find("login page errors"), std::string::npos) << posted;
  }
  if (!lc.expect_out.empty()) {
    EXPECT_NE(r.out.find(lc.expect_out), std::string::npos) << "want \"" << lc.expect_out << "\"";
  }
  for (const auto& want : lc.files) {
    bool found = false;
    for (const auto& e : fs::recursive_directory_iterator(fx.fx()))
      if (e.is_regular_file() && e.path().filename() == want && fs::file_size(e.path()) > 0) found = true;
    EXPECT_TRUE(found) << "the run left no (non-empty) " << want << " under the fixture";
  }
  // Labelled by the seed it carries, for bench/seed_timings.sh (it sets it beside that document's sleeps).
  static const std::map<std::string, std::string> seed = {
      {"pre-deploy-backup.lua", "000"}, {"dependency-rollback.lua", "000"}, {"feature-flag-rollback.lua", "001"},
      {"node-api-rollback.lua", "002"}, {"system-rollback.lua", "003"}, {"sprint-rollback.lua", "004"},
      {"pre-sprint-check.lua", "004"}};
  auto sd = seed.find(lc.runbook);
  record_run_time((sd == seed.end() ? std::string("?") : sd->second) + " " + lc.runbook.substr(0, lc.runbook.size() - 4) +
                      " " + lc.label + (lc.by_hand ? " (live, app started by hand)" : " (live)"), r);
}

INSTANTIATE_TEST_SUITE_P(
    Seeds, LiveProcedure,
    ::testing::Values(
        LiveCase{"pre-deploy-backup.lua", "backup", {{"db_check", "python3,-c,print('database answers')"}, {"pg_dsn", "{pg}"}},
                 false, {}, "", "PostgreSQL connection verified"},
        LiveCase{"dependency-rollback.lua", "L1 pin", kDep, true},
        LiveCase{"dependency-rollback.lua", "L2 restore from backup", kDep, true},
        LiveCase{"dependency-rollback.lua", "L1 pin with a critical check",
                 Params{kDep[0], kDep[1], kDep[2], {"pg_dsn", "{pg}"}, {"max_p95_ms", "2000"}}, true, {}, "",
                 "PostgreSQL connection verified"},
        LiveCase{"dependency-rollback.lua", "L3 fresh environment", kDep, true},
        LiveCase{"feature-flag-rollback.lua", "investigate", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "emergency endpoint", kFlag, true},
        // 001's internal message (ISSUE / IMPACT / ACTION / STATUS / NEXT STEPS), sent to a chat
        // webhook (the fixture's HTTP server stands in for it).
        LiveCase{"feature-flag-rollback.lua", "phase 3 flags",
                 Params{kFlag[0], kFlag[1], {"notify_webhook", "{url}/hooks/chat"}, {"impact", "login page errors"}}, true,
                 {}, "", "NEXT STEPS:"},
        LiveCase{"feature-flag-rollback.lua", "phase 2 flags (restart)", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "env rollback mode", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "git", Params{kFlag[0], kFlag[1], {"auth_url", "{app_url}/api/auth/me"}}, true,
                 {}, "", "auth flow: "},
        LiveCase{"feature-flag-rollback.lua", "git over uncommitted work", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "database from the newest backup", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "database", kFlag, true},
        LiveCase{"feature-flag-rollback.lua", "database reinitialised", kFlag, true, {}, "data/pcm_ops_tools_backup_*.db",
                 "database reinitialised"},
        LiveCase{"node-api-rollback.lua", "info", {}},
        LiveCase{"system-rollback.lua", "revert", {{"monitor_for", "3s"}}},
        LiveCase{"system-rollback.lua", "revert and push", {}},
        LiveCase{"system-rollback.lua", "reset with backup branch and push", {}},
        LiveCase{"sprint-rollback.lua", "L1 full", kSprint, true},
        LiveCase{"sprint-rollback.lua", "L1 full, ignored files too", kSprint, true},
        LiveCase{"sprint-rollback.lua", "L2 sprint", kSprint, true, {"test_failures.txt", "report.md"}},
        LiveCase{"sprint-rollback.lua", "L3 selective", kSprint, true},
        LiveCase{"sprint-rollback.lua", "recover commits", kSprint, true},
        LiveCase{"sprint-rollback.lua", "analyze",
                 Params{kSprint[0], kSprint[1], kSprint[2], {"coverage_cmd", "python3,-c,print('TOTAL 412 35 87%')"},
                        {"baseline_coverage", "90"}, {"baseline_p95_ms", "100"}},
                 true, {"git_reflog.txt", "git_graph.txt", "test_failures.txt", "report.md", "coverage.txt", "performance.txt"},
                 "", "coverage 87 % (baseline 90 %, delta -3.0)"},
        LiveCase{"sprint-rollback.lua", "L2 sprint over uncommitted work", kSprint, true},
        LiveCase{"sprint-rollback.lua", "L3 selective over uncommitted work", kSprint, true},
        LiveCase{"pre-sprint-check.lua", "checks and checkpoint", {}}),
    live_name);

// ---- Through a real pm2 -------------------------------------------------------------------
// The modes that restart the application through its manager, run live with pm2 managing the
// fixture's real backend (backend/app.py on its own port) and frontend, each pm2 daemon in a
// PM2_HOME of its own: system-rollback's services, env and complete-system modes (003), and
// node-api-rollback's code and frontend modes (002 §4.1, §4.4, §11.1).
namespace {

std::map<std::string, std::string> pm2_env(const Fixture& fx, const std::string& home) {
  auto env = cli_env(fx);
  env["PM2_HOME"] = home;
  env["npm_config_offline"] = "true";
  env["npm_config_audit"] = "false";
  env["npm_config_fund"] = "false";
  return env;
}

std::string step_failures(const CliResult& r) {
  std::string failure;
  for (const auto& e : r.events())
    if (e.value("type", "") == "step_end" && e.value("outcome", "") == "failed")
      failure += "step '" + e.value("name", "") + "': " + e.value("error", "") + "\n";
  return failure + r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0) + r.err;
}

}  // namespace

TEST(Runbooks, LiveSystemRollbackServicesEnvAndCompleteSystemThroughARealPm2) {
  Fixture fx;
  std::string top = fs::path(fx.fx()).parent_path().string();
  struct Reaper {
    std::string dir;
    ~Reaper() { kill_under(dir); }
  } reaper{top};
  std::string app = fx.app();
  // The notification worker logs as it works: the monitoring checks that logs are being written.
  write_file(top + "/worker.js", "setInterval(() => require('fs').appendFileSync('" + top + "/worker.log', 'tick\\n'), 300);\n");
  Pm2Apps pm2(top + "/pm2", pm2_ecosystem(top + "/apps.json", {{{"backend-v2", "backend/app.py", "", app}},
                                                             {{"frontend-v2", "../backend/app.py", "frontend_port", app + "/frontend"}},
                                                             {{"notification-worker", top + "/worker.js", "", top}}}));
  ASSERT_TRUE(wait_for_port(fx.app_port(), 20000)) << "pm2's backend-v2 did not listen\n" << pm2.pm2({"logs", "--nostream"});
  ASSERT_TRUE(wait_for_port(fx.front_port(), 20000)) << "pm2's frontend-v2 did not listen";
  RedisServer redis;
  RedisClient rc(redis.port());
  rc.fill("session:", 5);
  auto env = pm2_env(fx, top + "/pm2");
  auto sys = [&](const std::vector<std::pair<std::string, std::string>>& extra, const std::string& journal) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/system-rollback.lua", "--json", "--yes",
                                     "-p", "repo=" + app, "-p", "backend=pm2", "-p", "healthy_within=30s",
                                     "-p", "health=" + fx.subst("{app_url}/health,{front_url}/"), "--journal", top + "/" + journal};
    for (const auto& [k, v] : extra) {
      args.push_back("-p");
      args.push_back(k + "=" + v);
    }
    return run_cli(args, env, 300);
  };

  // 0. The partial script's "unknown service" refusal, before anything is touched.
  std::string tree = sha256_tree(app);
  auto unknown = sys({{"mode", "services"}, {"services", "auth,nosuch"}, {"redis_url", redis.url(0)}}, "j0.db");
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE((unknown.out + unknown.err).find("unknown service 'nosuch'"), std::string::npos) << unknown.out << unknown.err;
  EXPECT_EQ(sha256_tree(app), tree);
  EXPECT_EQ(rc.dbsize(), 5);

  // 1. Service by service (all five the document names): their files from the good release,
  // their switches off in .env, the auth cache flushed, and the services they run in restarted.
  auto before = pm2.apps();
  write_file(app + "/frontend/bad-page.js", "bad\n");
  run_ok({"git", "add", "-A"}, app);
  run_ok({"git", "commit", "-qm", "frontend: a bad page"}, app);
  auto s = sys({{"mode", "services"}, {"services", "auth,payments,booking,notifications,integrations,frontend"},
                {"good_ref", "v1.0.0"}, {"redis_url", redis.url(0)},
                {"integration_restore", "touch," + top + "/integrations-restored"},
                {"booking_cache_clear", "touch," + top + "/booking-cache-cleared"}},
               "j1.db");
  ASSERT_EQ(s.code, 0) << step_failures(s);
  record_run_time("003 system-rollback mode=services (pm2, Redis)", s);
  EXPECT_EQ(read_file(app + "/routers/auth.py"), "# routers/auth.py v1.0.0\n");
  EXPECT_EQ(read_file(app + "/services/payment_service.py"), "# services/payment_service.py v1.0.0\n");
  EXPECT_EQ(read_file(app + "/routers/appointments.py"), "# routers/appointments.py v1.0.0\n");
  std::string dotenv = read_file(app + "/.env");
  EXPECT_NE(dotenv.find("ENABLE_GMB_INTEGRATION=false"), std::string::npos) << dotenv;
  EXPECT_NE(dotenv.find("ENABLE_ADVANCED_ANALYTICS=false"), std::string::npos) << dotenv;
  EXPECT_NE(dotenv.find("ENABLE_NEW_PAYMENT_FLOW=false"), std::string::npos) << dotenv;
  EXPECT_NE(dotenv.find("ENABLE_ADVANCED_NOTIFICATIONS=false"), std::string::npos) << dotenv;
  EXPECT_NE(dotenv.find("STRIPE_SECRET_KEY=sk_test_new"), std::string::npos) << "restore_env was not asked for";
  EXPECT_EQ(rc.dbsize(), 0) << "the auth cache was not flushed";
  EXPECT_TRUE(fs::exists(top + "/integrations-restored")) << "the integration backup hook did not run";
  EXPECT_TRUE(fs::exists(top + "/booking-cache-cleared")) << "the booking cache hook did not run";
  auto after = pm2.apps();
  EXPECT_GT(after["backend-v2"].restarts, before["backend-v2"].restarts) << pm2.pm2({"jlist"});
  EXPECT_GT(after["notification-worker"].restarts, before["notification-worker"].restarts);
  EXPECT_GT(after["frontend-v2"].restarts, before["frontend-v2"].restarts) << "services=frontend did not restart it";
  EXPECT_FALSE(fs::exists(app + "/frontend/bad-page.js")) << "the frontend still has the bad release's file";
  EXPECT_EQ(read_file(app + "/frontend/.next/static/app.js"), "built\n") << "the frontend was not rebuilt";
  for (const auto& [name, a] : after) EXPECT_EQ(a.status, "online") << name;

  // 2a. Only the variables named, from the backup, in place: the rest of the file stays, and the
  // values never reach the journal or the output.
  write_file(app + "/.env", "FEATURE_FLAG_ROLLBACK_MODE_ENABLED=true\nSTRIPE_SECRET_KEY=sk_test_newer\nNEW_ONLY=1\n");
  auto v = sys({{"mode", "env"}, {"env_vars", "STRIPE_SECRET_KEY"}}, "j2v.db");
  ASSERT_EQ(v.code, 0) << step_failures(v);
  EXPECT_EQ(read_file(app + "/.env"), "FEATURE_FLAG_ROLLBACK_MODE_ENABLED=true\nSTRIPE_SECRET_KEY=sk_test_old\nNEW_ONLY=1\n");
  EXPECT_EQ(v.out.find("sk_test_old"), std::string::npos) << "a restored value is in the output";
  EXPECT_TRUE(files_containing(top, "sk_test_old", "/app/").empty())
      << "a restored value is outside the work tree: " << files_containing(top, "sk_test_old", "/app/").front();

  // 2. The env file back from .env.backup (the current one kept in the run's artifacts, not in
  // the work tree), the first app service restarted.
  before = after;
  auto e = sys({{"mode", "env"}}, "j2.db");
  ASSERT_EQ(e.code, 0) << step_failures(e);
  record_run_time("003 system-rollback mode=env (pm2)", e);
  EXPECT_EQ(read_file(app + "/.env"), read_file(app + "/.env.backup"));
  after = pm2.apps();
  EXPECT_GT(after["backend-v2"].restarts, before["backend-v2"].restarts);
  for (const auto& f : fs::directory_iterator(app))
    EXPECT_EQ(f.path().filename().string().find(".env.bak"), std::string::npos) << "an env copy is in the work tree: " << f.path();

  // 3. The complete system: services stopped (frontend first), the branch reset to the good
  // release after a tag and a backup branch, the env file restored, the services started again
  // on the good code, validated.
  write_file(app + "/.env", "STRIPE_SECRET_KEY=sk_test_newer\n");
  std::string bad_head = output_of({"git", "rev-parse", "HEAD"}, app);
  write_file(app + "/data/app_port_state/metrics.json", R"({"active_sessions": 12, "booking_success_rate": 98.5})");
  before = pm2.apps();
  auto c = sys({{"mode", "system"}, {"good_ref", "v1.0.0"}, {"validate", "touch," + top + "/validated"},
                {"workers", "notification-worker"}, {"max_p95_ms", "2000"}, {"security_headers", "Content-Type"},
                {"metrics_url", fx.subst("{app_url}/api/metrics")}, {"metric_floors", "booking_success_rate:95"},
                {"monitor_for", "2s"}, {"monitor_every", "1s"}, {"app_log", top + "/worker.log"}, {"log_must_grow", "true"}},
               "j3.db");
  ASSERT_EQ(c.code, 0) << step_failures(c);
  record_run_time("003 system-rollback mode=system (pm2: stop, reset, env, start, validate)", c);
  EXPECT_EQ(output_of({"git", "rev-parse", "HEAD"}, app), output_of({"git", "rev-parse", "v1.0.0^{commit}"}, app));
  EXPECT_NE(read_file(app + "/backend/app.py").find("# app v1.0.0"), std::string::npos);
  EXPECT_EQ(read_file(app + "/.env"), read_file(app + "/.env.backup"));
  EXPECT_TRUE(fs::exists(top + "/validated")) << "the validation argv did not run";
  EXPECT_NE(c.out.find("worker notification-worker: running"), std::string::npos);
  EXPECT_NE(c.out.find("performance: P95 "), std::string::npos);
  EXPECT_NE(c.out.find("metric booking_success_rate = 98.5"), std::string::npos) << c.out.substr(c.out.size() > 3000 ? c.out.size() - 3000 : 0);
  EXPECT_NE(c.out.find("security headers present: Content-Type"), std::string::npos);
  EXPECT_NE(c.out.find("worker.log grew by "), std::string::npos) << "the monitoring did not check the log";
  std::string branches = output_of({"git", "branch", "--list", "emergency-backup-*", "--format=%(objectname)"}, app);
  EXPECT_NE(branches.find(bad_head), std::string::npos) << "no backup branch at the bad head: " << branches;
  after = pm2.apps();
  for (const char* n : {"backend-v2", "frontend-v2"}) {
    EXPECT_EQ(after[n].status, "online") << n;
    EXPECT_NE(after[n].pid, before[n].pid) << n << " was not stopped and started";
  }
  EXPECT_EQ(after["notification-worker"].pid, before["notification-worker"].pid) << "not an app service";
  // The stop came before the reset: the journal's order of effects.
  std::vector<std::string> order;
  for (const auto& ev : c.events())
    if (ev.value("type", "") == "effect" && ev.value("status", "") == "ok" && ev.value("kind", "") == "change")
      order.push_back(ev.value("name", "") + " " + ev.value("args", rb::json::object()).value("name", ""));
  auto pos = [&](const std::string& prefix) {
    for (size_t i = 0; i < order.size(); ++i)
      if (order[i].rfind(prefix, 0) == 0) return i;
    return order.size();
  };
  EXPECT_LT(pos("service.stop"), pos("git.reset")) << ::testing::PrintToString(order);
  EXPECT_LT(pos("git.reset"), pos("service.start")) << ::testing::PrintToString(order);
}

TEST(Runbooks, LiveNodeApiCodeAndFrontendRollbackThroughARealPm2) {
  Fixture fx;
  std::string top = fs::path(fx.fx()).parent_path().string();
  struct Reaper {
    std::string dir;
    ~Reaper() { kill_under(dir); }
  } reaper{top};
  std::string app = fx.app();
  write_file(top + "/worker.js", "setInterval(() => {}, 1000);\n");
  // The API is the fixture's backend (it answers the admin endpoints and logs them).
  int redis_port = free_port();
  Pm2Apps pm2(top + "/pm2", pm2_ecosystem(top + "/apps.json", {{{"api", "backend/app.py", "", app}},
                                                             {{"frontend", "../backend/app.py", "frontend_port", app + "/frontend"}},
                                                             {{"queue-worker", top + "/worker.js", "", top}},
                                                             {{"redis", "redis-server", "--port " + std::to_string(redis_port) +
                                                                   " --bind 127.0.0.1 --appendonly no --dir " + top, top}}}));
  ASSERT_TRUE(wait_for_port(redis_port, 20000)) << "pm2's redis-server did not listen";
  ASSERT_TRUE(wait_for_port(fx.app_port(), 20000)) << "pm2's api did not listen";
  ASSERT_TRUE(wait_for_port(fx.front_port(), 20000)) << "pm2's frontend did not listen";
  auto env = pm2_env(fx, top + "/pm2");
  auto node = [&](const std::vector<std::pair<std::string, std::string>>& extra, const std::string& journal) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/node-api-rollback.lua", "--json", "--yes",
                                     "-p", "repo=" + app, "-p", "stable_ref=v1.0.0", "-p", "dsn=",
                                     "-p", "base_url=" + fx.subst("{app_url}"), "-p", "healthy_within=30s",
                                     "-p", "metrics_samples=20", "--journal", top + "/" + journal};
    for (const auto& [k, v] : extra) {
      args.push_back("-p");
      args.push_back(k + "=" + v);
    }
    return run_cli(args, env, 300);
  };
  auto requests = [&] {
    std::string p = app + "/data/app_port_state/requests.log";
    return fs::exists(p) ? read_file(p) : std::string();
  };

  // 4.4: only the frontend's files move, it is rebuilt and only its pm2 app restarts.
  write_file(app + "/frontend/page.js", "bad page\n");
  run_ok({"git", "add", "-A"}, app);
  run_ok({"git", "commit", "-qm", "frontend: bad page"}, app);
  auto before = pm2.apps();
  // The web root still serves the bad build's files (4.4 step 4 copies the rebuilt ones there).
  write_file(top + "/www/app.js", "bad build\n");
  auto f = node({{"mode", "frontend"}, {"static_root", top + "/www"}, {"cdn_purge_url", fx.server().url("/cdn/purge")},
                 {"cdn_token", "cdn-s3cret-tok"}},
                "j1.db");
  ASSERT_EQ(f.code, 0) << step_failures(f);
  record_run_time("002 node-api-rollback mode=frontend (pm2)", f);
  EXPECT_FALSE(fs::exists(app + "/frontend/page.js")) << "the frontend's added file is still there";
  EXPECT_EQ(read_file(top + "/www/app.js"), "built\n") << "the rebuilt static files were not deployed";
  std::string cdn = read_file(fx.state() + "/../http/requests.log");
  EXPECT_NE(cdn.find("/cdn/purge"), std::string::npos) << "the CDN was not purged: " << cdn;
  EXPECT_NE(cdn.find("Bearer cdn-s3cret-tok"), std::string::npos) << cdn;
  EXPECT_EQ(f.out.find("cdn-s3cret-tok"), std::string::npos) << "the CDN token is in the output";
  EXPECT_NE(read_file(app + "/backend/app.py").find("# app v1.1.0"), std::string::npos) << "the backend moved too";
  auto after = pm2.apps();
  EXPECT_GT(after["frontend"].restarts, before["frontend"].restarts);
  EXPECT_EQ(after["api"].restarts, before["api"].restarts) << "the API was restarted by a frontend rollback";

  // 4.1 / 11.1: the whole checkout at the stable release (local work stashed), npm ci, build,
  // `pm2 restart all`: every app, the queue workers and the frontend too, then health, smoke
  // tests and the metric targets; the queues paused before and resumed after.
  write_file(app + "/routers/auth.py", "# a hotfix in progress\n");
  before = pm2.apps();
  auto c = node({{"mode", "code"}, {"e2e_script", "test:e2e"}, {"app_log", app + "/logs/pcm_ops_tools.log"},
                 {"monitor_for", "3s"}, {"monitor_every", "1s"}},
                "j2.db");
  ASSERT_EQ(c.code, 0) << step_failures(c);
  record_run_time("002 node-api-rollback mode=code (pm2 restart all)", c);
  EXPECT_EQ(output_of({"git", "rev-parse", "HEAD"}, app), output_of({"git", "rev-parse", "v1.0.0^{commit}"}, app));
  EXPECT_NE(read_file(app + "/backend/app.py").find("# app v1.0.0"), std::string::npos);
  EXPECT_NE(output_of({"git", "stash", "list"}, app), "") << "the local change was not stashed";
  bool ci = false;
  for (const auto& ev : c.events())
    if (ev.value("type", "") == "effect" && ev.value("name", "") == "npm.ci" && ev.value("status", "") == "ok") ci = true;
  EXPECT_TRUE(ci) << "npm ci did not run";
  after = pm2.apps();
  for (const char* n : {"api", "frontend", "queue-worker"}) {
    EXPECT_GT(after[n].restarts, before[n].restarts) << n << " was not restarted by pm2 restart all";
    EXPECT_EQ(after[n].status, "online") << n;
  }
  std::string req = requests();
  size_t pause = req.find("/api/queue/pause-all"), resume = req.find("/api/queue/resume-all");
  ASSERT_NE(pause, std::string::npos) << req;
  ASSERT_NE(resume, std::string::npos) << req;
  EXPECT_LT(pause, resume);
  EXPECT_NE(c.out.find("6.4 metric targets met"), std::string::npos) << c.out.substr(c.out.size() > 3000 ? c.out.size() - 3000 : 0);
  EXPECT_TRUE(fs::exists(app + "/e2e-ran")) << "the critical e2e tests did not run";
  EXPECT_NE(c.out.find("errors in the log since the rollback began: 0"), std::string::npos);
  // 6.2's extended monitoring watched the queues and the machine too.
  EXPECT_NE(c.out.find("queues: "), std::string::npos);
  EXPECT_NE(c.out.find("resources: memory "), std::string::npos);

  // 4.3 with "restart Redis if needed": the keys of the pattern go (SCAN, not KEYS), Redis is
  // restarted through its manager and answers again, and the rest of the keyspace survives.
  {
    RedisClient rc(redis_port);
    rc.fill("gemini:", 20);
    rc.set("session:1", "keep");
  }
  before = pm2.apps();
  auto k = node({{"mode", "cache"}, {"redis_url", "redis://127.0.0.1:" + std::to_string(redis_port) + "/0"},
                 {"redis_restart", "true"}, {"redis_backend", "pm2"}, {"redis_service", "redis"}},
                "j3.db");
  ASSERT_EQ(k.code, 0) << step_failures(k);
  record_run_time("002 node-api-rollback mode=cache redis_restart (pm2)", k);
  after = pm2.apps();
  EXPECT_GT(after["redis"].restarts, before["redis"].restarts) << "Redis was not restarted";
  ASSERT_TRUE(wait_for_port(redis_port, 10000));
  RedisClient rc(redis_port);
  EXPECT_EQ(rc.dbsize(), 1) << "want only session:1 left";
  EXPECT_EQ(rc.get("session:1"), "keep");
  EXPECT_NE(k.out.find("20 keys matching gemini:* deleted"), std::string::npos) << k.out.substr(k.out.size() > 3000 ? k.out.size() - 3000 : 0);
}
