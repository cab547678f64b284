#include "journal/journal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <variant>

#include "core/clock.h"
#include "core/hash.h"
#include "core/strings.h"

namespace rb {
namespace fs = std::filesystem;

namespace {

constexpr int kSchemaVersion = Journal::kSchemaVersion;

// Version 3 (this one) is version 1 plus the columns and tables added by kMigrations; a new
// journal is made by creating version 1 and migrating it, so old and new journals end up with one
// shape.
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
    // 3: the process's start time (a run whose process is gone shows as crashed), and large
    // values stored once by content. effects.blobs: {"args"|"result"|"preview": [[pointer,
    // sha256, size], ...]}, the places in each value where a stored string goes back ("" for the
    // whole value, which comes first).
    R"sql(
ALTER TABLE runs ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE effects ADD COLUMN blobs TEXT NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS blobs(sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL,
  data BLOB NOT NULL);
)sql",
    // 4: `runbook runs` (newest first) and `stats --since` on a journal of 100,000 runs read an
    // index instead of sorting the table.
    R"sql(
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started_ms, id);
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
  kMarkResumed,
  kInsertBlob,
  kSelectBlob,
  kReleasePlan,
  kClaimRun,
  kUnclaimRun,
  kFillReserved,
  kDropReserved,
  kSetArtifacts,
  kStmtCount
};

const char* const kSql[kStmtCount] = {
    "INSERT INTO runs(parent_id, runbook, version, file, sha256, modules, git_commit, git_dirty, "
    "params, mode, offline, host, user, cwd, seed, started_ms, outcome, steps_total, artifacts, "
    "extra, pid, plan_id, pid_start) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "UPDATE runs SET ended_ms=?, outcome=?, error=?, exit_code=?, modules=?, git_commit=?, "
    "git_dirty=?, artifacts=?, extra=?, steps_total=? WHERE id=?",
    "INSERT OR REPLACE INTO steps(run_id, idx, attempt, name, started_ms, outcome) "
    "VALUES(?,?,?,?,?,?)",
    "UPDATE steps SET ended_ms=?, outcome=?, error=? WHERE run_id=? AND idx=? AND attempt=?",
    "INSERT OR REPLACE INTO effects(run_id, seq, step_idx, attempt, name, kind, args, describe, "
    "state, preview, site, started_ms, origin, origin_run, blobs) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    // The begun row's args references stay; result and preview get theirs.
    "UPDATE effects SET state=?, result=?, preview=?, error=?, ended_ms=?, "
    "blobs=json_patch(blobs, ?) WHERE run_id=? AND seq=?",
    "INSERT INTO logs(run_id, seq, step_idx, level, message, at_ms) VALUES(?,?,?,?,?,?)",
    "INSERT OR REPLACE INTO effects(run_id, seq, step_idx, attempt, name, kind, args, describe, "
    "state, result, preview, error, site, started_ms, ended_ms, origin, origin_run, blobs) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "UPDATE runs SET resumed_by = ?1, outcome = CASE outcome WHEN 'running' THEN 'crashed' ELSE "
    "outcome END, error = CASE outcome WHEN 'running' THEN 'the process ended without finishing "
    "the run (found by resume)' ELSE error END WHERE id = ?2",
    "INSERT OR IGNORE INTO blobs(sha256, size, data) VALUES(?,?,?)",
    "SELECT data FROM blobs WHERE sha256 = ?",
    "UPDATE runs SET plan_id = '' WHERE id = ?",
    // A plan's reserved row becomes its execution; only while it is still reserved, so of two
    // operators starting the plan at once exactly one gets it.
    "UPDATE runs SET parent_id=?, runbook=?, version=?, file=?, sha256=?, modules=?, git_commit=?, "
    "git_dirty=?, params=?, mode=?, offline=?, host=?, user=?, cwd=?, seed=?, started_ms=?, "
    "outcome=?, steps_total=?, artifacts=?, extra=?, pid=?, pid_start=?, ended_ms=0, error='', "
    "exit_code=-1 WHERE id=? AND plan_id=? AND outcome='reserved'",
    "UPDATE runs SET outcome='reserved', ended_ms=0, error='', exit_code=-1, extra=? "
    "WHERE id=? AND plan_id=?",
    // The reservation gets the runbook, file and parameters its dry-run resolved.
    "UPDATE runs SET (runbook, version, file, sha256, modules, git_commit, git_dirty, params, "
    "steps_total, host, user, cwd) = (SELECT runbook, version, file, sha256, modules, git_commit, "
    "git_dirty, params, steps_total, host, user, cwd FROM runs WHERE id = ?1) "
    "WHERE id = ?2 AND outcome = 'reserved'",
    "DELETE FROM runs WHERE id = ? AND outcome = 'reserved'",
    "UPDATE runs SET artifacts = ? WHERE id = ?",
};

// How long a write waits for other processes' short transactions before it gives up.
constexpr int kBusyTimeoutMs = 2000;
constexpr int64_t kWriteDeadlineMs = 60000;

std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// s cut to at most n bytes, not inside a UTF-8 sequence.
std::string_view utf8_head(std::string_view s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string truncated(std::string_view s) {
  return std::string(utf8_head(s, Journal::kBlobMin)) + "… [truncated: " +
         std::to_string(s.size()) + " bytes, sha256 " + sha256_hex(s) + "]";
}

// Log lines and errors: cut with a marker when long.
std::string capped(const std::string& s) {
  return s.size() > Journal::kBlobMin ? truncated(s) : s;
}

std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

}  // namespace

// A value bound to a statement parameter. Large texts are shared, not copied, between the row
// batched in memory and SQLite (bound SQLITE_STATIC while the statement runs).
using Bound = std::variant<std::nullptr_t, int64_t, std::shared_ptr<const std::string>>;

struct Journal::Row {
  int stmt = 0;
  std::vector<Bound> values;
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> blobs;  // sha, bytes
  int64_t* rowid = nullptr;  // set to the inserted row's id
  int64_t* changes = nullptr;  // set to the number of rows the statement changed
  size_t bytes = 0;

  Row& add(std::nullptr_t) {
    values.emplace_back(nullptr);
    return *this;
  }
  Row& add(int64_t v) {
    values.emplace_back(v);
    return *this;
  }
  Row& add(int v) { return add(static_cast<int64_t>(v)); }
  Row& add(bool v) { return add(static_cast<int64_t>(v)); }
  Row& add(std::string v) {
    bytes += v.size();
    values.emplace_back(std::make_shared<const std::string>(std::move(v)));
    return *this;
  }
  Row& add(const char* v) { return add(std::string(v)); }
  // A plain JSON column: null stays NULL.
  Row& add(const json& v) {
    if (v.is_null()) return add(nullptr);
    return add(dump(v));
  }
  // An effect value: large strings go to the blob table; their references are added to `refs`
  // under `column`.
  Row& add_value(const json& v, const char* column, json& refs);
};

namespace {

// Whether any string in v is large enough for the blob table (bounded depth: deeper parts are
// left inline, the whole-value rule still bounds them).
bool has_large(const json& v, int depth) {
  if (v.is_string()) return v.get_ref<const std::string&>().size() > Journal::kBlobMin;
  if (depth > 256 || !v.is_structured()) return false;
  for (const auto& c : v)
    if (has_large(c, depth + 1)) return true;
  return false;
}

using BlobList = std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>;

void externalize(json& v, const std::string& ptr, int depth, json& refs, BlobList& blobs) {
  if (v.is_string()) {
    auto& s = v.get_ref<std::string&>();
    if (s.size() <= Journal::kBlobMin) return;
    if (s.size() > Journal::kValueCap) {
      v = truncated(s);
      return;
    }
    std::string sha = sha256_hex(s);
    size_t size = s.size();
    auto data = std::make_shared<const std::string>(std::move(s));
    v = "[stored once: sha256 " + sha + ", " + std::to_string(size) + " bytes]";
    refs.push_back(json::array({ptr, sha, size}));
    blobs.emplace_back(sha, std::move(data));
    return;
  }
  if (depth > 256) return;
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      externalize(it.value(), ptr + "/" + pointer_token(it.key()), depth + 1, refs, blobs);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i)
      externalize(v[i], ptr + "/" + std::to_string(i), depth + 1, refs, blobs);
  }
}

}  // namespace

Journal::Row& Journal::Row::add_value(const json& v, const char* column, json& refs) {
  if (v.is_null()) return add(nullptr);
  json col_refs = json::array();
  std::string text;
  if (has_large(v, 0)) {
    json copy = v;
    externalize(copy, "", 0, col_refs, blobs);
    text = dump(copy);
  } else {
    text = dump(v);
  }
  if (text.size() > kBlobMin) {
    if (text.size() > kValueCap) {
      // Too large to keep at all: what it began with, its size and digest.
      blobs.clear();
      col_refs = json::array();
      text = dump(json(truncated(text)));
    } else {
      // The whole JSON text, stored once; its reference (pointer null) is applied first.
      std::string sha = sha256_hex(text);
      size_t size = text.size();
      col_refs.insert(col_refs.begin(), json::array({nullptr, sha, size}));
      blobs.emplace_back(sha, std::make_shared<const std::string>(std::move(text)));
      text = dump(json("[stored once: sha256 " + sha + ", " + std::to_string(size) + " bytes]"));
    }
  }
  for (const auto& b : blobs) bytes += b.second->size();
  if (!col_refs.empty()) refs[column] = std::move(col_refs);
  return add(std::move(text));
}

// The SQLite connection and its statements.
struct Journal::Store {
  std::string path;
  sqlite3* db = nullptr;
  sqlite3_stmt* stmts[kStmtCount] = {};
  dev_t dev = 0;
  ino_t ino = 0;
  bool on_disk = false;

  ~Store() {
    for (auto* s : stmts) sqlite3_finalize(s);
    if (db) sqlite3_close(db);
  }

  // The failure as an operator reads it, naming the path and the cause.
  std::string describe(int rc, const std::string& msg, int sys_errno = 0) const {
    std::string detail = path + ": " + msg;
    if (sys_errno && sys_errno != EAGAIN) detail += std::string(": ") + std::strerror(sys_errno);
    switch (rc & 0xff) {
      case SQLITE_FULL: return "journal: disk full (" + detail + ")";
      case SQLITE_IOERR: return "journal: I/O error (" + detail + ")";
      case SQLITE_READONLY: return "journal: read-only (" + detail + ")";
      case SQLITE_CANTOPEN: return "journal: cannot open the file (" + detail + ")";
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB: return "journal: damaged (" + detail + ")";
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return "journal: locked by another process for more than " +
               std::to_string(kWriteDeadlineMs / 1000) + " s (" + detail + ")";
      default: return "journal: " + detail;
    }
  }

  std::string error(int rc) const {
    return describe(rc, sqlite3_errmsg(db), sqlite3_system_errno(db));
  }

  // A statement that is not a write (PRAGMA, schema): throws with a clear message.
  void exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      std::string what = sql;
      throw JournalError(describe(rc, msg + " (" + trim(what.substr(0, 40)) + ")"));
    }
  }

  // nullptr when it cannot be prepared (the error is in db).
  sqlite3_stmt* stmt(int which) {
    if (!stmts[which] && sqlite3_prepare_v2(db, kSql[which], -1, &stmts[which], nullptr) != SQLITE_OK)
      return nullptr;
    return stmts[which];
  }

  // Binds and runs one row's statement; the statement is reset whatever happens (a statement left
  // running makes COMMIT fail with "SQL statements in progress").
  int run(int which, const std::vector<Bound>& values, int64_t* rowid, int64_t* changes = nullptr) {
    sqlite3_stmt* s = stmt(which);
    if (!s) return sqlite3_extended_errcode(db);
    int i = 1;
    for (const auto& v : values) {
      if (std::holds_alternative<std::nullptr_t>(v)) {
        sqlite3_bind_null(s, i);
      } else if (const auto* n = std::get_if<int64_t>(&v)) {
        sqlite3_bind_int64(s, i, *n);
      } else {
        const auto& t = *std::get<std::shared_ptr<const std::string>>(v);
        if (which == kInsertBlob && i == 3)
          sqlite3_bind_blob64(s, i, t.data(), t.size(), SQLITE_STATIC);
        else
          sqlite3_bind_text64(s, i, t.data(), t.size(), SQLITE_STATIC, SQLITE_UTF8);
      }
      ++i;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE && rowid) *rowid = sqlite3_last_insert_rowid(db);
    if (rc == SQLITE_DONE && changes) *changes = sqlite3_changes64(db);
    int ext = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ext;
  }

  // The file was removed (or replaced) while open: writes would go to a file no one can read.
  std::string gone() const {
    if (!on_disk) return "";
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return "journal: " + path + " was deleted while the run was going (" +
             std::strerror(errno) + "); nothing more can be recorded";
    if (st.st_dev != dev || st.st_ino != ino)
      return "journal: " + path + " was replaced by another file while the run was going";
    return "";
  }
};

namespace {

std::string col_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s, i)))
           : "";
}

json col_json(sqlite3_stmt* s, int i) {
  std::string t = col_text(s, i);
  if (t.empty()) return nullptr;
  return parse_json(t);
}

// RAII for read statements; every step's result is checked.
struct Query {
  sqlite3_stmt* s = nullptr;
  const Journal::Store* store;
  sqlite3* db;
  Query(Journal::Store& st, const char* sql) : store(&st), db(st.db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw JournalError(st.error(sqlite3_errcode(db)));
  }
  ~Query() { sqlite3_finalize(s); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  void bind(int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
  void bind(int i, const std::string& v) {
    sqlite3_bind_text64(s, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  bool step() {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw JournalError(store->error(sqlite3_extended_errcode(db)));
  }
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
  r.pid_start = sqlite3_column_int64(s, i++);
  return r;
}

const char* kRunColumns =
    "id, parent_id, runbook, version, file, sha256, modules, git_commit, git_dirty, params, mode, "
    "offline, host, user, cwd, seed, started_ms, ended_ms, outcome, error, exit_code, "
    "steps_total, artifacts, extra, resumed_by, pid, plan_id, pid_start";

bool busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

// Why a journal cannot be opened at `path`, beyond SQLite's "unable to open database file".
std::string open_diagnosis(const std::string& path) {
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "directory " + dir.string() + " does not exist";
  if (::access(dir.c_str(), W_OK) != 0)
    return "directory " + dir.string() + ": " + std::strerror(errno);
  if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0)
    return path + ": " + std::strerror(errno);
  return "";
}

// An existing journal (and its -wal/-shm) wider than 0600, and its state directory wider than
// 0700, are tightened; a warning says so when that is not possible. Only a directory named
// "runbook" (the default $XDG_STATE_HOME/runbook) is tightened: --journal /tmp/x.db must not
// change /tmp.
void tighten_private(const std::string& path, const fs::path& parent) {
  auto tighten = [](const std::string& p, mode_t want) {
    struct stat sb;
    if (::stat(p.c_str(), &sb) != 0) return;
    if ((sb.st_mode & 077 & ~want) == 0) return;
    if (::chmod(p.c_str(), sb.st_mode & want & 07777) != 0)
      std::fprintf(stderr, "runbook: warning: %s is readable by others (mode %03o) and cannot be made private: %s\n",
                   p.c_str(), static_cast<unsigned>(sb.st_mode & 0777), std::strerror(errno));
  };
  if (!parent.empty() && parent.filename() == "runbook") tighten(parent.string(), 0700);
  for (const char* suffix : {"", "-wal", "-shm"}) tighten(path + suffix, 0600);
}

}  // namespace

std::string Journal::default_path() {
  if (const char* p = std::getenv("RUNBOOK_JOURNAL"); p && *p) return p;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x)
    return std::string(x) + "/runbook/journal.db";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/state/runbook/journal.db";
}

Journal::Journal(const std::string& path) : path_(path), store_(std::make_unique<Store>()) {
  Store& st = *store_;
  st.path = path;
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  // The journal holds what runs did (parameters, outputs): private to its owner from the first
  // byte. With umask 077 every directory created is 0700 and the database 0600 (SQLite gives
  // the -wal and -shm files the database's mode).
  mode_t old_umask = ::umask(077);
  if (!parent.empty() && path != ":memory:") fs::create_directories(parent, ec);
  if (path != ":memory:") tighten_private(path, parent);
  int open_rc = sqlite3_open_v2(path.c_str(), &st.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  ::umask(old_umask);
  if (open_rc != SQLITE_OK) {
    std::string msg = st.db ? sqlite3_errmsg(st.db) : "out of memory";
    std::string why = ec ? "cannot create directory " + parent.string() + ": " + ec.message()
                         : open_diagnosis(path);
    throw std::runtime_error("cannot open journal " + path + ": " + msg +
                             (why.empty() ? "" : " (" + why + ")"));
  }
  sqlite3_extended_result_codes(st.db, 1);
  sqlite3_busy_timeout(st.db, kBusyTimeoutMs);
  try {
    // Switching a new file to WAL takes an exclusive lock and does not wait for it: two
    // processes opening a fresh journal at once (a run, and `runbook runs` watching it) retry.
    for (int tries = 0;; ++tries) {
      int rc = sqlite3_exec(st.db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) break;
      if (!busy(rc) || tries >= 500) {
        std::string why = open_diagnosis(path);
        if (!why.empty())
          throw JournalError("cannot open journal " + path + ": " + sqlite3_errmsg(st.db) + " (" +
                             why + ")");
        st.exec("PRAGMA journal_mode=WAL");
      }
      sqlite3_sleep(20);
    }
    st.exec("PRAGMA synchronous=NORMAL");
    st.exec("PRAGMA foreign_keys=OFF");
    // The WAL shrinks back after a checkpoint instead of staying as large as the largest
    // transaction (a large value would otherwise take its room twice on disk).
    st.exec("PRAGMA journal_size_limit=4194304");
    // Each query is finished before the next statement: a statement left open holds a read
    // snapshot, and upgrading it to a write fails at once (no busy wait) if another process
    // wrote meanwhile.
    auto user_version = [&] {
      Query v(st, "PRAGMA user_version");
      return v.step() ? sqlite3_column_int(v.s, 0) : 0;
    };
    int version = user_version();
    if (version > kSchemaVersion)
      throw std::runtime_error("journal " + path + " has schema version " +
                               std::to_string(version) + ", newer than this runbook (" +
                               std::to_string(kSchemaVersion) + ")");
    if (version < kSchemaVersion) {
      st.exec("BEGIN IMMEDIATE");
      try {
        // Another process may have migrated it while we waited for the lock.
        version = user_version();
        if (version == 0) {
          st.exec(kSchema);
          version = 1;
        }
        for (; version < kSchemaVersion; ++version) st.exec(kMigrations[version - 1]);
        st.exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        st.exec("COMMIT");
      } catch (...) {
        sqlite3_exec(st.db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
  } catch (...) {
    store_.reset();
    throw;
  }
  struct stat s {};
  if (path != ":memory:" && !path.empty() && ::stat(path.c_str(), &s) == 0) {
    st.on_disk = true;
    st.dev = s.st_dev;
    st.ino = s.st_ino;
  }
}

Journal::~Journal() {
  if (store_ && store_->db) flush();
}

// One short transaction: the batched rows and `extra`. Retried whole while other processes hold
// the write lock (SQLITE_BUSY at BEGIN, a write or COMMIT), up to kWriteDeadlineMs.
bool Journal::write(Row* extra, bool durable) {
  Store& st = *store_;
  if (frozen_) {  // a simulated crash: what was not written is lost
    pending_.clear();
    pending_bytes_ = 0;
    return true;
  }
  if (pending_.empty() && !extra) return true;
  if (std::string g = st.gone(); !g.empty()) {
    failure_ = g;
    return false;
  }
  auto give_up = now_epoch_ms() + kWriteDeadlineMs;
  for (int attempt = 0;; ++attempt) {
    int rc = SQLITE_OK;
    auto exec = [&](const char* sql) {
      if (rc == SQLITE_OK) rc = sqlite3_exec(st.db, sql, nullptr, nullptr, nullptr);
    };
    auto run_row = [&](Row& r) {
      for (const auto& [sha, data] : r.blobs) {
        if (rc != SQLITE_OK) return;
        rc = st.run(kInsertBlob,
                    {std::make_shared<const std::string>(sha),
                     static_cast<int64_t>(data->size()), data},
                    nullptr);
      }
      if (rc == SQLITE_OK) rc = st.run(r.stmt, r.values, r.rowid, r.changes);
    };
    if (durable) exec("PRAGMA synchronous=FULL");
    exec("BEGIN IMMEDIATE");
    for (auto& r : pending_) run_row(r);
    if (extra) run_row(*extra);
    exec("COMMIT");
    std::string msg = rc == SQLITE_OK ? "" : sqlite3_errmsg(st.db);
    int sys_errno = sqlite3_system_errno(st.db);
    if (!sqlite3_get_autocommit(st.db))
      sqlite3_exec(st.db, "ROLLBACK", nullptr, nullptr, nullptr);
    if (durable) sqlite3_exec(st.db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      if (durable) ++durable_commits_;
      pending_.clear();
      pending_bytes_ = 0;
      failure_.clear();
      return true;
    }
    if (busy(rc) && now_epoch_ms() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 7 * std::min(attempt, 20)));
      continue;
    }
    // A unique index refusing the row is the caller's to report (a plan executed twice).
    if ((rc & 0xff) == SQLITE_CONSTRAINT && extra) throw std::runtime_error("journal: " + msg);
    failure_ = st.describe(rc, msg, sys_errno);
    return false;
  }
}

void Journal::queue(Row row) {
  if (pending_.empty()) oldest_pending_ms_ = now_epoch_ms();
  // While the journal cannot write, what piles up in memory is bounded: past 64 MiB, rows are
  // dropped (the run is failing at its next effect anyway).
  if (!failure_.empty() && pending_bytes_ > kValueCap) return;
  pending_bytes_ += row.bytes;
  pending_.push_back(std::move(row));
}

// Another process reading the journal (`runbook runs` during a long wait) sees rows at most
// this late; a crash loses at most this much of probe history, which resume re-reads anyway.
void Journal::maybe_flush() {
  if (pending_.size() > 256 || pending_bytes_ > (8u << 20) ||
      now_epoch_ms() - oldest_pending_ms_ > 250)
    flush();
}

void Journal::set_frozen(bool frozen) {
  if (frozen && !frozen_) flush();
  frozen_ = frozen;
}

void Journal::flush() {
  if (pending_.empty()) return;
  write(nullptr, false);
}

void Journal::check() {
  if (failure_.empty()) return;
  if (pending_.empty()) {
    // A durable write failed and nothing else waits: the next durable write will tell.
    failure_.clear();
    return;
  }
  if (!write(nullptr, false)) throw JournalError(failure_);
}

int64_t Journal::begin_run(RunRecord& r) {
  Row row;
  row.stmt = kInsertRun;
  int64_t id = 0;
  row.rowid = &id;
  row.add(r.parent_id).add(r.runbook).add(r.version).add(r.file).add(r.sha256).add(r.modules);
  row.add(r.git_commit).add(r.git_dirty).add(r.params).add(r.mode).add(r.offline).add(r.host);
  row.add(r.user).add(r.cwd).add(r.seed).add(r.started_ms).add(r.outcome).add(r.steps_total);
  row.add(r.artifacts).add(r.extra).add(r.pid).add(r.plan_id).add(r.pid_start);
  try {
    if (!write(&row, true)) throw JournalError(failure_);
  } catch (const JournalError&) {
    throw;
  } catch (const std::runtime_error& e) {
    if (!r.plan_id.empty() && std::string(e.what()).find("UNIQUE") != std::string::npos)
      throw std::runtime_error("plan " + r.plan_id + " has already been executed");
    throw;
  }
  r.id = id;
  return r.id;
}

void Journal::set_artifacts(int64_t run_id, const std::string& dir) {
  Row row;
  row.stmt = kSetArtifacts;
  row.add(dir).add(run_id);
  queue(std::move(row));  // written with the first step's row, before any effect
}

void Journal::update_run(const RunRecord& r) {
  Row row;
  row.stmt = kUpdateRun;
  row.add(r.ended_ms).add(r.outcome).add(capped(r.error)).add(r.exit_code).add(r.modules);
  row.add(r.git_commit).add(r.git_dirty).add(r.artifacts).add(r.extra).add(r.steps_total).add(r.id);
  queue(std::move(row));
  flush();
}

void Journal::step_begun(const StepRecord& st) {
  Row row;
  row.stmt = kInsertStep;
  row.add(st.run_id).add(st.idx).add(st.attempt).add(st.name).add(st.started_ms).add(st.outcome);
  queue(std::move(row));
  flush();
}

void Journal::step_ended(const StepRecord& st) {
  Row row;
  row.stmt = kUpdateStep;
  row.add(st.ended_ms).add(st.outcome).add(capped(st.error)).add(st.run_id).add(st.idx);
  row.add(st.attempt);
  queue(std::move(row));
  flush();
}

void Journal::effect_begun(const EffectRecord& e, bool durable) {
  Row row;
  row.stmt = kInsertEffect;
  json refs = json::object();
  row.add(e.run_id).add(e.seq).add(e.step_idx).add(e.attempt).add(e.name).add(e.kind);
  row.add_value(e.args, "args", refs).add(e.describe).add(e.state);
  row.add_value(e.preview, "preview", refs).add(e.site).add(e.started_ms).add(e.origin);
  row.add(e.origin_run).add(dump(refs));
  if (!durable) {
    queue(std::move(row));
    maybe_flush();
    return;
  }
  // Written with what is batched, in one transaction committed with an fsync.
  if (!write(&row, true)) throw JournalError(failure_);
}

void Journal::effect_ended(const EffectRecord& e) {
  Row row;
  row.stmt = kUpdateEffect;
  json refs = json::object();
  row.add(e.state).add_value(e.result, "result", refs).add_value(e.preview, "preview", refs);
  if (!refs.contains("result")) refs["result"] = nullptr;  // json_patch: null removes the key
  if (!refs.contains("preview")) refs["preview"] = nullptr;
  row.add(capped(e.error)).add(e.ended_ms).add(dump(refs)).add(e.run_id).add(e.seq);
  queue(std::move(row));
  // A finished change is written at once (no fsync: it survives a process crash), so that
  // resume after a SIGKILL knows it completed. Probes ride along with the next write.
  if (e.kind == "change" && e.state != "planned")
    flush();
  else
    maybe_flush();
}

void Journal::effect_copied(const EffectRecord& e) {
  Row row;
  row.stmt = kCopyEffect;
  json refs = json::object();
  row.add(e.run_id).add(e.seq).add(e.step_idx).add(e.attempt).add(e.name).add(e.kind);
  row.add_value(e.args, "args", refs).add(e.describe).add(e.state);
  row.add_value(e.result, "result", refs).add_value(e.preview, "preview", refs);
  row.add(capped(e.error)).add(e.site).add(e.started_ms).add(e.ended_ms).add(e.origin);
  row.add(e.origin_run).add(dump(refs));
  queue(std::move(row));
  maybe_flush();
}

void Journal::mark_resumed(int64_t original, int64_t by) {
  Row row;
  row.stmt = kMarkResumed;
  row.add(by).add(original);
  queue(std::move(row));
  flush();
}

std::optional<int64_t> Journal::run_of_plan(const std::string& plan_id) {
  flush();
  Query q(*store_, "SELECT id FROM runs WHERE plan_id = ?1 AND outcome != 'reserved'");
  q.bind(1, plan_id);
  if (!q.step()) return std::nullopt;
  return sqlite3_column_int64(q.s, 0);
}

void Journal::release_plan(int64_t run_id) {
  Row row;
  row.stmt = kReleasePlan;
  row.add(run_id);
  queue(std::move(row));
  flush();
}

bool Journal::claim_reserved(RunRecord& r) {
  Row row;
  row.stmt = kClaimRun;
  int64_t changed = 0;
  row.changes = &changed;
  row.add(r.parent_id).add(r.runbook).add(r.version).add(r.file).add(r.sha256).add(r.modules);
  row.add(r.git_commit).add(r.git_dirty).add(r.params).add(r.mode).add(r.offline).add(r.host);
  row.add(r.user).add(r.cwd).add(r.seed).add(r.started_ms).add(r.outcome).add(r.steps_total);
  row.add(r.artifacts).add(r.extra).add(r.pid).add(r.pid_start).add(r.id).add(r.plan_id);
  if (!write(&row, true)) throw JournalError(failure_);
  return changed == 1;
}

void Journal::unclaim(const RunRecord& r) {
  Row row;
  row.stmt = kUnclaimRun;
  row.add(r.extra).add(r.id).add(r.plan_id);
  queue(std::move(row));
  flush();
}

void Journal::fill_reserved(int64_t reserved_id, int64_t from_run) {
  Row row;
  row.stmt = kFillReserved;
  row.add(from_run).add(reserved_id);
  queue(std::move(row));
  flush();
}

void Journal::drop_reserved(int64_t reserved_id) {
  Row row;
  row.stmt = kDropReserved;
  row.add(reserved_id);
  queue(std::move(row));
  flush();
}

void Journal::log(const LogRecord& l) {
  Row row;
  row.stmt = kInsertLog;
  row.add(l.run_id).add(l.seq).add(l.step_idx).add(l.level).add(capped(l.message)).add(l.at_ms);
  queue(std::move(row));
  maybe_flush();
}

std::vector<RunRecord> Journal::runs(const RunFilter& f) {
  flush();
  std::string sql = std::string("SELECT ") + kRunColumns +
                    " FROM runs WHERE (?1 = '' OR runbook = ?1) AND started_ms >= ?2"
                    " AND outcome != 'reserved'";
  // By start, not id: a plan's execution has the id reserved before its dry-run.
  sql += f.oldest_first ? " ORDER BY started_ms, id" : " ORDER BY started_ms DESC, id DESC";
  if (f.limit > 0) sql += " LIMIT " + std::to_string(f.limit);
  Query q(*store_, sql.c_str());
  q.bind(1, f.runbook);
  q.bind(2, f.since_ms);
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(read_run(q.s));
  return out;
}

std::optional<RunRecord> Journal::run(int64_t id) {
  flush();
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1";
  Query q(*store_, sql.c_str());
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_run(q.s);
}

std::optional<int64_t> Journal::last_run_id() {
  flush();
  Query q(*store_,
          "SELECT id FROM runs WHERE outcome != 'reserved' ORDER BY started_ms DESC, id DESC LIMIT 1");
  if (!q.step() || sqlite3_column_type(q.s, 0) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(q.s, 0);
}

std::vector<StepRecord> Journal::steps(int64_t run_id) {
  flush();
  Query q(*store_,
          "SELECT run_id, idx, attempt, name, started_ms, ended_ms, outcome, error FROM steps "
          "WHERE run_id = ?1 ORDER BY idx, attempt");
  q.bind(1, run_id);
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

namespace {

// Puts the stored strings back into a value read from a row (refs: [[pointer, sha256, size]]).
json restore(Journal::Store& st, json v, const json& refs) {
  if (!refs.is_array()) return v;
  for (const auto& ref : refs) {
    if (!ref.is_array() || ref.size() != 3 || !ref[1].is_string()) continue;
    if (!ref[0].is_string() && !ref[0].is_null()) continue;
    std::string sha = ref[1].get<std::string>();
    sqlite3_stmt* s = st.stmt(kSelectBlob);
    if (!s) throw JournalError(st.error(sqlite3_extended_errcode(st.db)));
    sqlite3_bind_text(s, 1, sha.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    std::string data;
    bool found = rc == SQLITE_ROW;
    if (found)
      data.assign(static_cast<const char*>(sqlite3_column_blob(s, 0)),
                  static_cast<size_t>(sqlite3_column_bytes(s, 0)));
    int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(st.db);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (err != SQLITE_OK) throw JournalError(st.error(err));
    if (!found) data = "[missing from the journal: sha256 " + sha + "]";
    if (ref[0].is_null()) {  // the whole value's JSON text
      v = found ? json::parse(data, nullptr, false) : json(data);
      continue;
    }
    try {
      v[json::json_pointer(ref[0].get<std::string>())] = std::move(data);
    } catch (const json::exception&) {
      // A damaged reference leaves the placeholder in place.
    }
  }
  return v;
}

}  // namespace

std::vector<RunBrief> Journal::run_briefs(int64_t since_ms) {
  flush();
  Query q(*store_,
          "SELECT id, parent_id, started_ms, ended_ms, resumed_by, runbook, mode, outcome FROM runs "
          "WHERE started_ms >= ?1 AND outcome != 'reserved' ORDER BY started_ms, id");
  q.bind(1, since_ms);
  std::vector<RunBrief> out;
  while (q.step()) {
    RunBrief r;
    r.id = sqlite3_column_int64(q.s, 0);
    r.parent_id = sqlite3_column_int64(q.s, 1);
    r.started_ms = sqlite3_column_int64(q.s, 2);
    r.ended_ms = sqlite3_column_int64(q.s, 3);
    r.resumed_by = sqlite3_column_int64(q.s, 4);
    r.runbook = col_text(q.s, 5);
    r.mode = col_text(q.s, 6);
    r.outcome = col_text(q.s, 7);
    out.push_back(std::move(r));
  }
  return out;
}

std::map<int64_t, RunOutline> Journal::outlines_not_succeeded(int64_t since_ms) {
  flush();
  std::map<int64_t, RunOutline> out;
  const char* runs_wanted =
      "run_id IN (SELECT id FROM runs WHERE started_ms >= ?1 AND outcome NOT IN ('succeeded', "
      "'reserved'))";
  {
    // Only the last attempt of each step, and only if it did not succeed: where a run went wrong.
    Query q(*store_, (std::string("SELECT run_id, idx, attempt, outcome FROM steps s WHERE ") + runs_wanted +
                      " AND outcome != 'succeeded' AND attempt = (SELECT MAX(attempt) FROM steps t "
                      "WHERE t.run_id = s.run_id AND t.idx = s.idx) ORDER BY run_id, idx, attempt")
                         .c_str());
    q.bind(1, since_ms);
    while (q.step()) {
      StepRecord s;
      s.run_id = sqlite3_column_int64(q.s, 0);
      s.idx = sqlite3_column_int(q.s, 1);
      s.attempt = sqlite3_column_int(q.s, 2);
      s.outcome = col_text(q.s, 3);
      out[s.run_id].steps.push_back(std::move(s));
    }
  }
  // Only the effects that failed or never finished: the failing effect, or the one in doubt.
  Query q(*store_, (std::string("SELECT run_id, seq, step_idx, attempt, name, kind, state, origin "
                                "FROM effects WHERE ") +
                    runs_wanted + " AND state IN ('failed', 'begun') ORDER BY run_id, seq")
                       .c_str());
  q.bind(1, since_ms);
  while (q.step()) {
    EffectRecord e;
    e.run_id = sqlite3_column_int64(q.s, 0);
    e.seq = sqlite3_column_int64(q.s, 1);
    e.step_idx = sqlite3_column_int(q.s, 2);
    e.attempt = sqlite3_column_int(q.s, 3);
    e.name = col_text(q.s, 4);
    e.kind = col_text(q.s, 5);
    e.state = col_text(q.s, 6);
    e.origin = col_text(q.s, 7);
    out[e.run_id].effects.push_back(std::move(e));
  }
  return out;
}

std::vector<EffectRecord> Journal::effects(int64_t run_id) {
  flush();
  Query q(*store_,
          "SELECT run_id, seq, step_idx, attempt, name, kind, args, describe, state, result, "
          "preview, error, site, started_ms, ended_ms, origin, origin_run, blobs FROM effects "
          "WHERE run_id = ?1 ORDER BY seq");
  q.bind(1, run_id);
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
    json refs = col_json(q.s, i++);
    if (refs.is_object() && !refs.empty()) {
      if (refs.contains("args")) e.args = restore(*store_, std::move(e.args), refs["args"]);
      if (refs.contains("result")) e.result = restore(*store_, std::move(e.result), refs["result"]);
      if (refs.contains("preview"))
        e.preview = restore(*store_, std::move(e.preview), refs["preview"]);
    }
    if (e.args.is_null()) e.args = json::object();
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<LogRecord> Journal::logs(int64_t run_id) {
  flush();
  Query q(*store_,
          "SELECT run_id, seq, step_idx, level, message, at_ms FROM logs WHERE run_id = ?1 "
          "ORDER BY rowid");
  q.bind(1, run_id);
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
