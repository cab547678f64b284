#include "effects/sqlite_db.h"

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace rb::sqlite {
namespace {

std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string hex(const unsigned char* p, int n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<size_t>(n) * 2);
  for (int i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

// The journal stores JSON, which cannot hold invalid UTF-8: such bytes become U+FFFD.
std::string utf8(std::string s) {
  json j = s;
  std::string dumped = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(dumped).get<std::string>();
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

}  // namespace

Db::Db(const std::string& path, OpenMode mode, Millis busy, std::function<bool()> stop)
    : path_(path), stop_(std::move(stop)) {
  int flags = mode == OpenMode::ReadOnly    ? SQLITE_OPEN_READONLY
              : mode == OpenMode::ReadWrite ? SQLITE_OPEN_READWRITE
                                            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  // No URI parsing: a path is a path ("file:x?mode=rwc" must not widen a read-only open).
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw EffectError("cannot open " + path + ": " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(std::max<int64_t>(0, busy.count())));
  if (stop_) sqlite3_progress_handler(db_, 2000, &Db::on_progress, this);
}

Db::~Db() {
  if (db_) sqlite3_close_v2(db_);
}

int Db::on_progress(void* self) {
  auto* d = static_cast<Db*>(self);
  if (d->stop_ && d->stop_()) d->stopped_ = true;
  return d->stopped_ ? 1 : 0;
}

void Db::fail(const std::string& what) const {
  throw EffectError(what + ": " + (stopped_ ? std::string("interrupted") : errmsg()));
}

void Db::run(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : errmsg();
    sqlite3_free(err);
    throw EffectError(sql + " on " + path_ + ": " + msg);
  }
}

Stmt::Stmt(Db& db, const std::string& sql, std::string* tail) : db_(db) {
  const char* rest = nullptr;
  if (sqlite3_prepare_v2(db.get(), sql.c_str(), static_cast<int>(sql.size()), &st_, &rest) !=
      SQLITE_OK)
    db.fail("cannot prepare SQL");
  if (tail) *tail = rest ? std::string(rest) : std::string();
}

Stmt::~Stmt() {
  if (st_) sqlite3_finalize(st_);
}

void Stmt::bind(const json& params) {
  int n = sqlite3_bind_parameter_count(st_);
  auto bind_one = [&](int idx, const json& v, const std::string& label) {
    int rc = SQLITE_OK;
    if (v.is_null()) rc = sqlite3_bind_null(st_, idx);
    else if (v.is_boolean()) rc = sqlite3_bind_int(st_, idx, v.get<bool>() ? 1 : 0);
    else if (v.is_number_integer() || v.is_number_unsigned()) rc = sqlite3_bind_int64(st_, idx, v.get<int64_t>());
    else if (v.is_number_float()) rc = sqlite3_bind_double(st_, idx, v.get<double>());
    else if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      rc = sqlite3_bind_text64(st_, idx, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    } else {
      throw EffectError("parameter " + label + " is a table; only strings, numbers, booleans and nil bind");
    }
    if (rc != SQLITE_OK) db_.fail("cannot bind parameter " + label);
  };
  if (params.is_null() || (params.is_array() && params.empty()) ||
      (params.is_object() && params.empty())) {
    if (n > 0) throw EffectError("the SQL has " + std::to_string(n) + " parameter(s) but no params were given");
    return;
  }
  if (params.is_array()) {
    if (static_cast<int>(params.size()) != n)
      throw EffectError("the SQL has " + std::to_string(n) + " parameter(s), params gives " +
                        std::to_string(params.size()));
    for (int i = 1; i <= n; ++i) {
      const char* name = sqlite3_bind_parameter_name(st_, i);
      if (name && name[0] != '?')
        throw EffectError("the SQL uses named parameter " + std::string(name) +
                          "; pass params as a table { name = value }");
      bind_one(i, params[static_cast<size_t>(i - 1)], "#" + std::to_string(i));
    }
    return;
  }
  if (!params.is_object()) throw EffectError("params must be a list or a table");
  for (int i = 1; i <= n; ++i) {
    const char* name = sqlite3_bind_parameter_name(st_, i);
    if (!name || name[0] == '?')
      throw EffectError("the SQL uses positional parameters; pass params as a list");
    std::string key = name + 1;
    if (!params.contains(key)) throw EffectError("params has no value for " + std::string(name));
    bind_one(i, params[key], name);
  }
  for (auto it = params.begin(); it != params.end(); ++it) {
    bool used = false;
    for (const char* p : {":", "@", "$"})
      used = used || sqlite3_bind_parameter_index(st_, (p + it.key()).c_str()) > 0;
    if (!used) throw EffectError("params." + it.key() + " is not a parameter of the SQL");
  }
}

int Stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
  db_.fail("SQL failed");
}

json column_value(sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return static_cast<int64_t>(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return sqlite3_column_double(st, i);
    case SQLITE_NULL: return nullptr;
    case SQLITE_BLOB: {
      // Blobs are bytes; shown as hex so that the journal (JSON) can hold them.
      auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st, i));
      return hex(p, sqlite3_column_bytes(st, i));
    }
    default: {
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      return utf8(std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, i))));
    }
  }
}

json Stmt::row() const {
  json r = json::object();
  int n = sqlite3_column_count(st_);
  for (int i = 0; i < n; ++i) {
    const char* name = sqlite3_column_name(st_, i);
    r[name ? name : std::to_string(i + 1)] = column_value(st_, i);
  }
  return r;
}

json table_counts(Db& db) {
  std::vector<std::string> names;
  {
    Stmt s(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
               "ESCAPE '\\' ORDER BY name");
    while (s.step() == SQLITE_ROW)
      names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
  }
  json out = json::object();
  for (const auto& n : names) {
    Stmt c(db, "SELECT count(*) FROM " + quote_ident(n));
    c.step();
    out[utf8(n)] = static_cast<int64_t>(sqlite3_column_int64(c.get(), 0));
  }
  return out;
}

std::string tables_text(const json& counts) {
  if (!counts.is_object() || counts.empty()) return "no tables";
  std::string out;
  size_t shown = 0;
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    if (shown++ == 8) {
      out += ", … " + std::to_string(counts.size() - 8) + " more";
      break;
    }
    out += (out.empty() ? "" : ", ") + it.key() + "=" + it.value().dump();
  }
  return out;
}

std::vector<std::string> integrity_problems(Db& db, bool quick, int max) {
  Stmt s(db, std::string(quick ? "PRAGMA quick_check(" : "PRAGMA integrity_check(") +
                 std::to_string(max) + ")");
  std::vector<std::string> out;
  while (s.step() == SQLITE_ROW) {
    auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0));
    std::string line = t ? t : "";
    if (line != "ok") out.push_back(utf8(line));
  }
  return out;
}

void backup_copy(Db& from, Db& to, const BackupHooks& hooks, int pages) {
  sqlite3_backup* b = sqlite3_backup_init(to.get(), "main", from.get(), "main");
  if (!b) to.fail("cannot start the backup of " + from.path() + " into " + to.path());
  struct Finish {
    sqlite3_backup* b;
    ~Finish() {
      if (b) sqlite3_backup_finish(b);
    }
  } guard{b};
  // The lock waits are ours, in short polls: SQLite's busy handler backs off to 100 ms sleeps
  // and loses every race against a busy writer. Restored after the copy.
  sqlite3_busy_timeout(from.get(), 0);
  sqlite3_busy_timeout(to.get(), 0);
  int steps = 0, restarts = 0;
  auto progressed = std::chrono::steady_clock::now();
  for (;;) {
    if (hooks.stop && hooks.stop()) throw EffectError("backup of " + from.path() + " interrupted");
    int rc = sqlite3_backup_step(b, pages);
    if (rc == SQLITE_DONE) break;
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      if (std::chrono::steady_clock::now() - progressed > hooks.max_wait)
        throw EffectError("backup of " + from.path() + " into " + to.path() +
                          ": database is locked (another connection held it for " +
                          format_duration(hooks.max_wait) + ")");
      pause_briefly();
      continue;
    }
    progressed = std::chrono::steady_clock::now();
    if (rc != SQLITE_OK) {
      guard.b = nullptr;
      sqlite3_backup_finish(b);
      throw EffectError("backup of " + from.path() + " into " + to.path() + " failed: " +
                        sqlite3_errstr(rc) + " (" + to.errmsg() + ")");
    }
    int remaining = sqlite3_backup_remaining(b), total = sqlite3_backup_pagecount(b);
    // A write through another connection restarts the copy from the first page (only one
    // step's worth is done again). A busy writer could restart it forever; after a second
    // restart the rest is copied under one read lock (writers wait on their busy timeout, or
    // append to the WAL meanwhile).
    if (pages > 0 && ++steps > 1 && total - remaining <= pages && ++restarts >= 2) pages = -1;
    if (hooks.progress) hooks.progress(remaining, total);
  }
  guard.b = nullptr;
  int rc = sqlite3_backup_finish(b);
  sqlite3_busy_timeout(from.get(), static_cast<int>(hooks.max_wait.count()));
  sqlite3_busy_timeout(to.get(), static_cast<int>(hooks.max_wait.count()));
  if (rc != SQLITE_OK)
    throw EffectError("backup of " + from.path() + " into " + to.path() + " failed: " + to.errmsg());
}

}  // namespace rb::sqlite
