// The sqlite3 handles the sqlite.* effects are built from: an owned connection and statement,
// parameter binding, rows as JSON, row counts, integrity checks and the online backup API.
// Every failure is an EffectError with SQLite's own message.
#pragma once
#include <sqlite3.h>

#include <functional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"

namespace rb::sqlite {

enum class OpenMode { ReadOnly, ReadWrite, Create };

class Db {
 public:
  // ReadOnly and ReadWrite never create the file. busy is how long to wait for another
  // connection's lock; `stop` (optional) is asked now and then during long statements and
  // ends them with SQLITE_INTERRUPT when it returns true.
  Db(const std::string& path, OpenMode mode, Millis busy, std::function<bool()> stop = {});
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  std::string errmsg() const { return sqlite3_errmsg(db_); }
  // Throws EffectError("<what>: <sqlite message>").
  [[noreturn]] void fail(const std::string& what) const;
  // Runs SQL that returns nothing of interest (PRAGMA, BEGIN, COMMIT).
  void run(const std::string& sql);
  bool stopped() const { return stopped_; }

 private:
  static int on_progress(void* self);
  sqlite3* db_ = nullptr;
  std::string path_;
  std::function<bool()> stop_;
  bool stopped_ = false;
};

class Stmt {
 public:
  // Prepares the first statement of `sql`; `tail` receives the rest (when given).
  Stmt(Db& db, const std::string& sql, std::string* tail = nullptr);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return st_; }
  bool empty() const { return st_ == nullptr; }  // only whitespace or comments
  // A list binds ?1.., a table binds :name / @name / $name. Counts must match.
  void bind(const json& params);
  // SQLITE_ROW, SQLITE_DONE; throws on anything else.
  int step();
  json row() const;  // the current row as { column = value }

 private:
  Db& db_;
  sqlite3_stmt* st_ = nullptr;
};

json column_value(sqlite3_stmt* st, int i);

// Tables (not SQLite's own) and their row counts, by name.
json table_counts(Db& db);
// "users=10, posts=3" (or "no tables"), for previews.
std::string tables_text(const json& counts);
// Problems reported by PRAGMA integrity_check (quick_check when quick); empty when sound.
std::vector<std::string> integrity_problems(Db& db, bool quick, int max = 20);

// Copies the main database of `from` into `to` with the online backup API. It copies `pages`
// at a time so that writers are not held off; if a writer keeps restarting the copy, it takes
// the rest in one step. `stop` is asked between steps (and while the source is locked).
struct BackupHooks {
  std::function<bool()> stop;
  // How long to keep trying while the other side holds a lock, without any progress.
  Millis max_wait{30000};
  std::function<void(int remaining, int total)> progress;
};
void backup_copy(Db& from, Db& to, const BackupHooks& hooks, int pages = 256);

}  // namespace rb::sqlite
