#include "journal/journal.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "core/clock.h"
#include "core/strings.h"

namespace rb {
namespace fs = std::filesystem;

namespace {

constexpr int kSchemaVersion = Journal::kSchemaVersion;

// Version 2 (this one) is version 1 plus the columns added by kMigrations[0]; a new journal is
// made by creating version 1 and migrating it, so old and new journals end up with one shape.
const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  parent_id INTEGER NOT NULL DEFAULT 0,
  runbook TEXT NOT NULL, version TEXT NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL,
  modules TEXT NOT NULL DEFAULT '{}', git_commit TEXT NOT NULL DEFAULT '',
  git_dirty INTEGER NOT NULL DEFAULT 0, params TEXT NOT NULL DEFAULT '{}',
  mode TEXT NOT NULL, offline INTEGER NOT NULL DEFAULT 0, host TEXT, user TEXT, cwd TEXT,
  seed INTEGER NOT NULL DEFAULT 0, started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', exit_code INTEGER NOT NULL DEFAULT -1,
  steps_total INTEGER NOT NULL DEFAULT 0, artifacts TEXT NOT NULL DEFAULT '',
  extra TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS runs_by_runbook ON runs(runbook, started_ms);
CREATE TABLE IF NOT EXISTS steps(
  run_id INTEGER NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
  started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '', PRIMARY KEY(run_id, idx, attempt));
CREATE TABLE IF NOT EXISTS effects(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, step_idx INTEGER NOT NULL,
  attempt INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, args TEXT NOT NULL,
  describe TEXT NOT NULL, state TEXT NOT NULL, result TEXT, preview TEXT,
  error TEXT NOT NULL DEFAULT '', site TEXT NOT NULL DEFAULT '', started_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(run_id, seq));
CREATE TABLE IF NOT EXISTS logs(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, step_idx INTEGER NOT NULL, level TEXT NOT NULL,
  message TEXT NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs(run_id);
)sql";

// kMigrations[i] takes a journal from version i+1 to i+2.
const char* kMigrations[] = {
    // 2: resume (who continued a run, which process ran it, which effects were answered from an
    // earlier run's journal) and plans (a plan executes at most once: the unique index).
    R"sql(
ALTER TABLE runs ADD COLUMN resumed_by INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN plan_id TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX IF NOT EXISTS runs_plan_once ON runs(plan_id) WHERE plan_id != '';
ALTER TABLE effects ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE effects ADD COLUMN origin_run INTEGER NOT NULL DEFAULT 0;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion - 1);

enum Stmt {
  kInsertRun,
  kUpdateRun,
  kInsertStep,
  kUpdateStep,
  kInsertEffect,
  kUpdateEffect,
  kInsertLog,
  kCopyEffect,
  kStmtCount
};

std::string col_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

json col_json(sqlite3_stmt* s, int i) {
  std::string t = col_text(s, i);
  if (t.empty()) return nullptr;
  return parse_json(t);
}

void bind_value(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
void bind_value(sqlite3_stmt* s, int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
void bind_value(sqlite3_stmt* s, int i, const json& v) {
  if (v.is_null())
    sqlite3_bind_null(s, i);
  else
    bind_value(s, i, v.dump());
}

// Binds the values to the statement's parameters 1, 2, ... in order.
template <typename... Values>
void bind_all(sqlite3_stmt* s, const Values&... values) {
  int i = 1;
  (bind_value(s, i++, values), ...);
}

struct Reset {
  sqlite3_stmt* s;
  ~Reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

// RAII for ad-hoc query statements.
struct Query {
  sqlite3_stmt* s = nullptr;
  Query(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db));
  }
  ~Query() { sqlite3_finalize(s); }
  bool step() { return sqlite3_step(s) == SQLITE_ROW; }
};

RunRecord read_run(sqlite3_stmt* s) {
  RunRecord r;
  int i = 0;
  r.id = sqlite3_column_int64(s, i++);
  r.parent_id = sqlite3_column_int64(s, i++);
  r.runbook = col_text(s, i++);
  r.version = col_text(s, i++);
  r.file = col_text(s, i++);
  r.sha256 = col_text(s, i++);
  r.modules = col_json(s, i++);
  r.git_commit = col_text(s, i++);
  r.git_dirty = sqlite3_column_int(s, i++) != 0;
  r.params = col_json(s, i++);
  r.mode = col_text(s, i++);
  r.offline = sqlite3_column_int(s, i++) != 0;
  r.host = col_text(s, i++);
  r.user = col_text(s, i++);
  r.cwd = col_text(s, i++);
  r.seed = sqlite3_column_int64(s, i++);
  r.started_ms = sqlite3_column_int64(s, i++);
  r.ended_ms = sqlite3_column_int64(s, i++);
  r.outcome = col_text(s, i++);
  r.error = col_text(s, i++);
  r.exit_code = sqlite3_column_int(s, i++);
  r.steps_total = sqlite3_column_int(s, i++);
  r.artifacts = col_text(s, i++);
  r.extra = col_json(s, i++);
  if (r.extra.is_null()) r.extra = json::object();
  if (r.modules.is_null()) r.modules = json::object();
  if (r.params.is_null()) r.params = json::object();
  r.resumed_by = sqlite3_column_int64(s, i++);
  r.pid = sqlite3_column_int64(s, i++);
  r.plan_id = col_text(s, i++);
  return r;
}

const char* kRunColumns =
    "id, parent_id, runbook, version, file, sha256, modules, git_commit, git_dirty, params, mode, "
    "offline, host, user, cwd, seed, started_ms, ended_ms, outcome, error, exit_code, "
    "steps_total, artifacts, extra, resumed_by, pid, plan_id";

}  // namespace

std::string Journal::default_path() {
  if (const char* p = std::getenv("RUNBOOK_JOURNAL"); p && *p) return p;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x)
    return std::string(x) + "/runbook/journal.db";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/state/runbook/journal.db";
}

Journal::Journal(const std::string& path) : path_(path), stmts_(kStmtCount, nullptr) {
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open journal " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    // Switching a new file to WAL takes an exclusive lock and does not wait for it: two
    // processes opening a fresh journal at once (a run, and `runbook runs` watching it) retry.
    for (int tries = 0;; ++tries) {
      int rc = sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) break;
      if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= 250) exec("PRAGMA journal_mode=WAL");
      sqlite3_sleep(20);
    }
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=OFF");
    // Each query is finished before the next statement: a statement left open holds a read
    // snapshot, and upgrading it to a write fails at once (no busy wait) if another process
    // wrote meanwhile.
    auto user_version = [&] {
      Query v(db_, "PRAGMA user_version");
      return v.step() ? sqlite3_column_int(v.s, 0) : 0;
    };
    int version = user_version();
    if (version > kSchemaVersion)
      throw std::runtime_error("journal " + path + " has schema version " +
                               std::to_string(version) + ", newer than this runbook (" +
                               std::to_string(kSchemaVersion) + ")");
    if (version < kSchemaVersion) {
      exec("BEGIN IMMEDIATE");
      try {
        // Another process may have migrated it while we waited for the lock.
        version = user_version();
        if (version == 0) {
          exec(kSchema);
          version = 1;
        }
        for (; version < kSchemaVersion; ++version) exec(kMigrations[version - 1]);
        exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        exec("COMMIT");
      } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Journal::~Journal() {
  if (!db_) return;
  if (in_txn_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  for (auto* s : stmts_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

void Journal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    std::string what = sql;
    throw std::runtime_error("journal " + path_ + ": " + msg + " (" + trim(what.substr(0, 40)) + ")");
  }
}

sqlite3_stmt* Journal::stmt(int which, const char* sql) {
  if (!stmts_[which]) {
    if (sqlite3_prepare_v2(db_, sql, -1, &stmts_[which], nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  }
  return stmts_[which];
}

void Journal::ensure_txn() {
  if (in_txn_) return;
  exec("BEGIN");
  in_txn_ = true;
  txn_started_ms_ = now_epoch_ms();
}

// synchronous may change only between transactions: a durable write first commits what is
// batched (no fsync), then writes its row alone in a transaction committed with FULL (one fsync
// of the WAL).
void Journal::begin_durable() {
  commit(false);
  exec("PRAGMA synchronous=FULL");
  ensure_txn();
}

void Journal::commit(bool durable) {
  if (!in_txn_) return;
  exec("COMMIT");
  in_txn_ = false;
  if (durable) {
    exec("PRAGMA synchronous=NORMAL");
    ++durable_commits_;
  }
}

// Another process reading the journal (`runbook runs` during a long wait) sees rows at most
// this late; a crash loses at most this much of probe history, which resume re-reads anyway.
void Journal::maybe_commit_by_age() {
  if (in_txn_ && now_epoch_ms() - txn_started_ms_ > 250) commit(false);
}

void Journal::flush() { commit(false); }

int64_t Journal::begin_run(RunRecord& r) {
  begin_durable();
  auto* s = stmt(kInsertRun,
                 "INSERT INTO runs(parent_id, runbook, version, file, sha256, modules, git_commit, "
                 "git_dirty, params, mode, offline, host, user, cwd, seed, started_ms, outcome, "
                 "steps_total, artifacts, extra, pid, plan_id) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  Reset reset{s};
  bind_all(s, r.parent_id, r.runbook, r.version, r.file, r.sha256, r.modules, r.git_commit,
           static_cast<int64_t>(r.git_dirty), r.params, r.mode, static_cast<int64_t>(r.offline),
           r.host, r.user, r.cwd, r.seed, r.started_ms, r.outcome,
           static_cast<int64_t>(r.steps_total), r.artifacts, r.extra, r.pid, r.plan_id);
  if (sqlite3_step(s) != SQLITE_DONE) {
    std::string msg = sqlite3_errmsg(db_);
    if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE && !r.plan_id.empty()) {
      exec("ROLLBACK");
      in_txn_ = false;
      exec("PRAGMA synchronous=NORMAL");
      throw std::runtime_error("plan " + r.plan_id + " has already been executed");
    }
    throw std::runtime_error("journal: " + msg);
  }
  r.id = sqlite3_last_insert_rowid(db_);
  commit(true);
  return r.id;
}

void Journal::update_run(const RunRecord& r) {
  ensure_txn();
  auto* s = stmt(kUpdateRun,
                 "UPDATE runs SET ended_ms=?, outcome=?, error=?, exit_code=?, modules=?, "
                 "git_commit=?, git_dirty=?, artifacts=?, extra=?, steps_total=? WHERE id=?");
  Reset reset{s};
  bind_all(s, r.ended_ms, r.outcome, r.error, static_cast<int64_t>(r.exit_code), r.modules,
           r.git_commit, static_cast<int64_t>(r.git_dirty), r.artifacts, r.extra,
           static_cast<int64_t>(r.steps_total), r.id);
  sqlite3_step(s);
  commit(false);
}

void Journal::step_begun(const StepRecord& st) {
  ensure_txn();
  auto* s = stmt(kInsertStep,
                 "INSERT OR REPLACE INTO steps(run_id, idx, attempt, name, started_ms, outcome) "
                 "VALUES(?,?,?,?,?,?)");
  Reset reset{s};
  bind_value(s, 1, st.run_id);
  bind_value(s, 2, static_cast<int64_t>(st.idx));
  bind_value(s, 3, static_cast<int64_t>(st.attempt));
  bind_value(s, 4, st.name);
  bind_value(s, 5, st.started_ms);
  bind_value(s, 6, st.outcome);
  sqlite3_step(s);
  commit(false);
}

void Journal::step_ended(const StepRecord& st) {
  ensure_txn();
  auto* s = stmt(kUpdateStep,
                 "UPDATE steps SET ended_ms=?, outcome=?, error=? WHERE run_id=? AND idx=? AND "
                 "attempt=?");
  Reset reset{s};
  bind_value(s, 1, st.ended_ms);
  bind_value(s, 2, st.outcome);
  bind_value(s, 3, st.error);
  bind_value(s, 4, st.run_id);
  bind_value(s, 5, static_cast<int64_t>(st.idx));
  bind_value(s, 6, static_cast<int64_t>(st.attempt));
  sqlite3_step(s);
  commit(false);
}

void Journal::effect_begun(const EffectRecord& e, bool durable) {
  if (durable)
    begin_durable();
  else
    ensure_txn();
  auto* s = stmt(kInsertEffect,
                 "INSERT OR REPLACE INTO effects(run_id, seq, step_idx, attempt, name, kind, args, "
                 "describe, state, preview, site, started_ms, origin, origin_run) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  Reset reset{s};
  bind_all(s, e.run_id, e.seq, static_cast<int64_t>(e.step_idx), static_cast<int64_t>(e.attempt),
           e.name, e.kind, e.args, e.describe, e.state, e.preview, e.site, e.started_ms, e.origin,
           e.origin_run);
  if (sqlite3_step(s) != SQLITE_DONE)
    throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  if (durable)
    commit(true);
  else
    maybe_commit_by_age();
}

void Journal::effect_ended(const EffectRecord& e) {
  ensure_txn();
  auto* s = stmt(kUpdateEffect,
                 "UPDATE effects SET state=?, result=?, preview=?, error=?, ended_ms=? "
                 "WHERE run_id=? AND seq=?");
  Reset reset{s};
  bind_all(s, e.state, e.result, e.preview, e.error, e.ended_ms, e.run_id, e.seq);
  sqlite3_step(s);
  // A finished change is committed at once (no fsync: it survives a process crash), so that
  // resume after a SIGKILL knows it completed. Probes ride along with the next commit.
  if (e.kind == "change" && e.state != "planned")
    commit(false);
  else
    maybe_commit_by_age();
}

void Journal::effect_copied(const EffectRecord& e) {
  ensure_txn();
  auto* s = stmt(kCopyEffect,
                 "INSERT OR REPLACE INTO effects(run_id, seq, step_idx, attempt, name, kind, args, "
                 "describe, state, result, preview, error, site, started_ms, ended_ms, origin, "
                 "origin_run) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  Reset reset{s};
  bind_all(s, e.run_id, e.seq, static_cast<int64_t>(e.step_idx), static_cast<int64_t>(e.attempt),
           e.name, e.kind, e.args, e.describe, e.state, e.result, e.preview, e.error, e.site,
           e.started_ms, e.ended_ms, e.origin, e.origin_run);
  if (sqlite3_step(s) != SQLITE_DONE)
    throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  maybe_commit_by_age();
}

void Journal::mark_resumed(int64_t original, int64_t by) {
  ensure_txn();
  Query q(db_,
          "UPDATE runs SET resumed_by = ?1, outcome = CASE outcome WHEN 'running' THEN 'crashed' "
          "ELSE outcome END, error = CASE outcome WHEN 'running' THEN 'the process ended without "
          "finishing the run (found by resume)' ELSE error END WHERE id = ?2");
  bind_value(q.s, 1, by);
  bind_value(q.s, 2, original);
  sqlite3_step(q.s);
  commit(false);
}

std::optional<int64_t> Journal::run_of_plan(const std::string& plan_id) {
  flush();
  Query q(db_, "SELECT id FROM runs WHERE plan_id = ?1");
  bind_value(q.s, 1, plan_id);
  if (!q.step()) return std::nullopt;
  return sqlite3_column_int64(q.s, 0);
}

void Journal::release_plan(int64_t run_id) {
  ensure_txn();
  Query q(db_, "UPDATE runs SET plan_id = '' WHERE id = ?1");
  bind_value(q.s, 1, run_id);
  if (sqlite3_step(q.s) != SQLITE_DONE)
    throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  commit(false);
}

void Journal::log(const LogRecord& l) {
  ensure_txn();
  auto* s = stmt(kInsertLog,
                 "INSERT INTO logs(run_id, seq, step_idx, level, message, at_ms) "
                 "VALUES(?,?,?,?,?,?)");
  Reset reset{s};
  bind_value(s, 1, l.run_id);
  bind_value(s, 2, l.seq);
  bind_value(s, 3, static_cast<int64_t>(l.step_idx));
  bind_value(s, 4, l.level);
  bind_value(s, 5, l.message);
  bind_value(s, 6, l.at_ms);
  sqlite3_step(s);
  maybe_commit_by_age();
}

std::vector<RunRecord> Journal::runs(const RunFilter& f) {
  flush();
  std::string sql = std::string("SELECT ") + kRunColumns +
                    " FROM runs WHERE (?1 = '' OR runbook = ?1) AND started_ms >= ?2";
  sql += f.oldest_first ? " ORDER BY id" : " ORDER BY id DESC";
  if (f.limit > 0) sql += " LIMIT " + std::to_string(f.limit);
  Query q(db_, sql.c_str());
  bind_value(q.s, 1, f.runbook);
  bind_value(q.s, 2, f.since_ms);
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(read_run(q.s));
  return out;
}

std::optional<RunRecord> Journal::run(int64_t id) {
  flush();
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1";
  Query q(db_, sql.c_str());
  bind_value(q.s, 1, id);
  if (!q.step()) return std::nullopt;
  return read_run(q.s);
}

std::optional<int64_t> Journal::last_run_id() {
  flush();
  Query q(db_, "SELECT max(id) FROM runs");
  if (!q.step() || sqlite3_column_type(q.s, 0) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(q.s, 0);
}

std::vector<StepRecord> Journal::steps(int64_t run_id) {
  flush();
  Query q(db_,
          "SELECT run_id, idx, attempt, name, started_ms, ended_ms, outcome, error FROM steps "
          "WHERE run_id = ?1 ORDER BY idx, attempt");
  bind_value(q.s, 1, run_id);
  std::vector<StepRecord> out;
  while (q.step()) {
    StepRecord s;
    s.run_id = sqlite3_column_int64(q.s, 0);
    s.idx = sqlite3_column_int(q.s, 1);
    s.attempt = sqlite3_column_int(q.s, 2);
    s.name = col_text(q.s, 3);
    s.started_ms = sqlite3_column_int64(q.s, 4);
    s.ended_ms = sqlite3_column_int64(q.s, 5);
    s.outcome = col_text(q.s, 6);
    s.error = col_text(q.s, 7);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<EffectRecord> Journal::effects(int64_t run_id) {
  flush();
  Query q(db_,
          "SELECT run_id, seq, step_idx, attempt, name, kind, args, describe, state, result, "
          "preview, error, site, started_ms, ended_ms, origin, origin_run FROM effects "
          "WHERE run_id = ?1 ORDER BY seq");
  bind_value(q.s, 1, run_id);
  std::vector<EffectRecord> out;
  while (q.step()) {
    EffectRecord e;
    int i = 0;
    e.run_id = sqlite3_column_int64(q.s, i++);
    e.seq = sqlite3_column_int64(q.s, i++);
    e.step_idx = sqlite3_column_int(q.s, i++);
    e.attempt = sqlite3_column_int(q.s, i++);
    e.name = col_text(q.s, i++);
    e.kind = col_text(q.s, i++);
    e.args = col_json(q.s, i++);
    e.describe = col_text(q.s, i++);
    e.state = col_text(q.s, i++);
    e.result = col_json(q.s, i++);
    e.preview = col_json(q.s, i++);
    e.error = col_text(q.s, i++);
    e.site = col_text(q.s, i++);
    e.started_ms = sqlite3_column_int64(q.s, i++);
    e.ended_ms = sqlite3_column_int64(q.s, i++);
    e.origin = col_text(q.s, i++);
    e.origin_run = sqlite3_column_int64(q.s, i++);
    if (e.args.is_null()) e.args = json::object();
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<LogRecord> Journal::logs(int64_t run_id) {
  flush();
  Query q(db_,
          "SELECT run_id, seq, step_idx, level, message, at_ms FROM logs WHERE run_id = ?1 "
          "ORDER BY rowid");
  bind_value(q.s, 1, run_id);
  std::vector<LogRecord> out;
  while (q.step()) {
    LogRecord l;
    l.run_id = sqlite3_column_int64(q.s, 0);
    l.seq = sqlite3_column_int64(q.s, 1);
    l.step_idx = sqlite3_column_int(q.s, 2);
    l.level = col_text(q.s, 3);
    l.message = col_text(q.s, 4);
    l.at_ms = sqlite3_column_int64(q.s, 5);
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace rb
