// sqlite.*: SQLite databases in-process. Copies go through the online backup API, never a bare
// copy of a live file (which can catch a half-written transaction). Probes open the file
// read-only, so neither a query nor a dry-run can change it or create it.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/clock.h"
#include "core/hash.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/sqlite_db.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;
using sqlite::Db;
using sqlite::OpenMode;
using sqlite::Stmt;

// Follows symlinks: a link to a missing database is no database.
bool db_exists(const std::string& p) {
  std::error_code ec;
  return stdfs::exists(p, ec);
}

uint64_t file_size(const std::string& p) {
  std::error_code ec;
  auto n = stdfs::file_size(p, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

void require_db(const std::string& path, const std::string& what = "database") {
  std::error_code ec;
  if (!stdfs::exists(path, ec)) throw EffectError(what + " " + path + " does not exist");
  if (stdfs::is_directory(path, ec)) throw EffectError(what + " " + path + " is a directory");
}

// Asked by SQLite during long statements and between backup steps: Ctrl-C or the step's
// deadline end them. The caller re-raises through ctx.check_interrupt().
std::function<bool()> stopper(EffectContext& ctx) {
  return [&ctx] {
    try {
      ctx.check_interrupt();
      return false;
    } catch (const std::exception&) {
      return true;
    }
  };
}

// How long to wait for another connection's lock: the timeout argument, within the step.
Millis busy_wait(EffectContext& ctx, const Args& a) {
  Millis m = ctx.bound(a.duration("timeout"));
  if (m.count() <= 0) ctx.check_interrupt();
  return m;
}

template <typename F>
json guarded(EffectContext& ctx, F&& f) {
  try {
    return f();
  } catch (const EffectError&) {
    ctx.check_interrupt();  // an interrupted statement reports as interrupted, not as SQL
    throw;
  } catch (const Interrupted&) {
    throw;
  } catch (const DeadlineExceeded&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw EffectError(e.what());
  }
}

// What a database holds, for previews: { text, exists, size, tables }. Opens read-only.
json inspect(EffectContext& ctx, const std::string& path, const Args& a) {
  if (!db_exists(path)) return json{{"exists", false}, {"text", path + " (missing)"}};
  json out{{"exists", true}, {"size", file_size(path)}};
  try {
    Db d(path, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
    out["tables"] = sqlite::table_counts(d);
    out["text"] = path + " (" + sqlite::tables_text(out["tables"]) + "; " + size_text(file_size(path)) + ")";
  } catch (const EffectError& e) {
    out["unreadable"] = e.what();
    out["text"] = path + " (unreadable: " + e.what() + "; " + size_text(file_size(path)) + ")";
  }
  return out;
}

ArgSpec timeout_arg() {
  return opt("timeout", ArgType::Duration,
             "how long to wait for another connection's lock (never past the step's deadline)", "30s");
}

std::string backup_target(const Args& a) {
  stdfs::path db(abs_path(a.str("db")));
  std::string name = stamped_backup_name(db.filename().string());
  if (!a.has("to")) return db.parent_path().string() + "/" + name;
  std::string to = a.str("to");
  std::error_code ec;
  if (to.back() == '/' || stdfs::is_directory(to, ec)) {
    std::string dir = abs_path(to);
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/" + name;
  }
  return abs_path(to);
}

// Removes a database file and the journal files beside it (a failed, partial copy).
void remove_db_files(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) stdfs::remove(path + suffix, ec);
}

// Moves a database and its journal files into `dest` (same suffixes). Returns dest.
std::string move_db_files(const std::string& path, const std::string& dest) {
  stdfs::create_directories(stdfs::path(dest).parent_path());
  for (const char* suffix : {"-journal", "-wal", "-shm", ""})
    if (db_exists(path + suffix)) os::move_path(path + suffix, dest + suffix);
  return dest;
}

struct Copied {
  json tables;
};

// Online backup of `from` into a fresh file at `to`, checked before it is put in place.
Copied backup_file(EffectContext& ctx, const Args& a, const std::string& from, const std::string& to) {
  std::string tmp = os::unique_path(to + ".partial");
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      if (!path.empty()) remove_db_files(path);
    }
  } cleanup{tmp};
  Copied c;
  {
    Db src(from, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
    Db dst(tmp, OpenMode::Create, busy_wait(ctx, a), stopper(ctx));
    sqlite::BackupHooks hooks;
    hooks.stop = stopper(ctx);
    hooks.max_wait = busy_wait(ctx, a);
    hooks.progress = [&](int remaining, int total) {
      ctx.progress("backing up " + from + ": " + std::to_string(total - remaining) + "/" +
                   std::to_string(total) + " pages");
    };
    sqlite::backup_copy(src, dst, hooks);
    // A backup is one self-contained file: a copy of a WAL database would otherwise grow
    // -wal/-shm files beside it (and change under its checksum) the first time it is read.
    dst.run("PRAGMA journal_mode=DELETE");
    auto problems = sqlite::integrity_problems(dst, true);
    if (!problems.empty())
      throw EffectError("the copy of " + from + " fails its check: " + join(problems, "; "));
    c.tables = sqlite::table_counts(dst);
  }
  os::move_path(tmp, to);
  cleanup.path.clear();
  return c;
}

// The current database kept before a restore: <artifacts>/sqlite/<name>.bak-<stamp>. A file the
// backup API cannot read (not a database any more) is kept byte for byte instead.
std::string keep_current(EffectContext& ctx, const Args& a, const std::string& db) {
  std::string dest = os::unique_path(ctx.artifact_dir() + "/sqlite/" +
                                     stamped_backup_name(stdfs::path(db).filename().string()));
  stdfs::create_directories(stdfs::path(dest).parent_path());
  try {
    backup_file(ctx, a, db, dest);
  } catch (const EffectError& e) {
    ctx.check_interrupt();
    ctx.note("the current " + db + " cannot be read as a database (" + e.what() +
             "); its files are kept as they are");
    for (const char* suffix : {"", "-journal", "-wal"})
      if (db_exists(db + suffix)) os::copy_path(db + suffix, dest + suffix);
  }
  return dest;
}

// Splits a script into statements (by SQLite's own notion of a complete statement).
std::vector<std::string> split_statements(const std::string& sql) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] != ';') continue;
    std::string piece = sql.substr(start, i + 1 - start);
    if (sqlite3_complete(piece.c_str())) {
      out.push_back(piece);
      start = i + 1;
    }
  }
  std::string rest = sql.substr(start);
  std::string t = trim(rest);
  if (!t.empty()) out.push_back(rest);
  return out;
}

size_t skip_blank(const std::string& s, size_t i) {
  while (i < s.size()) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.compare(i, 2, "--") == 0) {
      i = s.find('\n', i);
      if (i == std::string::npos) return s.size();
    } else if (s.compare(i, 2, "/*") == 0) {
      i = s.find("*/", i + 2);
      if (i == std::string::npos) return s.size();
      i += 2;
    } else {
      break;
    }
  }
  return i;
}

// The statement's first keyword, upper-cased, comments skipped.
std::string first_keyword(const std::string& stmt) {
  std::string word;
  for (size_t i = skip_blank(stmt, 0); i < stmt.size() && std::isalpha(static_cast<unsigned char>(stmt[i])); ++i)
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(stmt[i])));
  return word;
}

// Nothing but whitespace, comments and semicolons.
bool only_comments(const std::string& stmt) {
  size_t i = skip_blank(stmt, 0);
  while (i < stmt.size() && stmt[i] == ';') i = skip_blank(stmt, i + 1);
  return i >= stmt.size();
}

json query_rows(EffectContext& ctx, const Args& a) {
  std::string db = a.str("db");
  require_db(db);
  Db d(db, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
  std::string tail;
  Stmt s(d, a.str("sql"), &tail);
  if (s.empty()) throw EffectError("sql is empty");
  if (!only_comments(tail))
    throw EffectError("sql holds more than one statement; sqlite.query runs one (sqlite.exec runs scripts)");
  if (!sqlite3_stmt_readonly(s.get()))
    throw EffectError("sql would change the database; sqlite.query only reads (use sqlite.exec)");
  s.bind(a.at("params"));
  json rows = json::array();
  int64_t limit = a.integer("limit");
  while (s.step() == SQLITE_ROW) {
    if (static_cast<int64_t>(rows.size()) >= limit)
      throw EffectError("the query returns more than limit = " + std::to_string(limit) +
                        " rows; narrow it (LIMIT, WHERE) or raise limit");
    rows.push_back(s.row());
  }
  return rows;
}

// The script's statements, checked as exec does before it opens anything.
std::vector<std::string> script_of(const Args& a) {
  auto statements = split_statements(a.str("sql"));
  std::erase_if(statements, only_comments);
  if (statements.empty()) throw EffectError("sql is empty");
  bool has_params = a.has("params") && !a.at("params").empty();
  if (has_params && statements.size() > 1)
    throw EffectError("params bind to one statement, but sql holds " +
                      std::to_string(statements.size()));
  return statements;
}

json run_script(const Args& a, Db& d, const std::vector<std::string>& statements);

json exec_script(EffectContext& ctx, const Args& a) {
  std::string db = a.str("db");
  require_db(db);
  auto statements = script_of(a);
  Db d(db, OpenMode::ReadWrite, busy_wait(ctx, a), stopper(ctx));
  return run_script(a, d, statements);
}

json run_script(const Args& a, Db& d, const std::vector<std::string>& statements) {
  bool own_transaction = false;
  for (const auto& s : statements) {
    std::string k = first_keyword(s);
    own_transaction = own_transaction || k == "BEGIN" || k == "COMMIT" || k == "END" ||
                      k == "ROLLBACK" || k == "SAVEPOINT" || k == "RELEASE";
  }
  // A script either applies whole or not at all, unless it manages its own transactions.
  bool wrap = statements.size() > 1 && a.boolean("transaction", true) && !own_transaction;

  if (wrap) d.run("BEGIN IMMEDIATE");
  int64_t affected = 0;
  json rows = json::array();
  try {
    for (size_t i = 0; i < statements.size(); ++i) {
      Stmt s(d, statements[i]);
      if (s.empty()) continue;
      if (i == 0) s.bind(a.at("params"));
      int64_t before = sqlite3_total_changes64(d.get());
      json these = json::array();
      while (s.step() == SQLITE_ROW) {
        if (static_cast<int64_t>(these.size()) < a.integer("limit")) these.push_back(s.row());
      }
      if (!these.empty()) rows = std::move(these);
      // changes() keeps the last DML's count across DDL; only count statements that changed rows.
      if (sqlite3_total_changes64(d.get()) != before) affected += sqlite3_changes64(d.get());
    }
    if (wrap) d.run("COMMIT");
  } catch (const EffectError& e) {
    if (wrap && !sqlite3_get_autocommit(d.get())) sqlite3_exec(d.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    std::string msg = e.what();
    if (msg.find("within a transaction") != std::string::npos)
      msg += " (set transaction = false when the script manages its own transactions)";
    throw EffectError(msg + (wrap ? "; nothing was changed (rolled back)" : ""));
  }
  return json{{"affected", affected},
              {"rows", rows},
              {"last_insert_id", static_cast<int64_t>(sqlite3_last_insert_rowid(d.get()))},
              {"statements", statements.size()}};
}


// ---- dry-run predictions ------------------------------------------------------------------
// ctx.predictions()["sqlite"][<absolute db path>] = { from = file } when the planned changes
// leave that database holding what `file` holds now (a restore from it, a backup of it), or
// { unknown = "sqlite.exec on ..." } when they change it in ways not predicted.

// The predictions of one module, or nullptr (reading never adds a key).
const json* module_predictions(EffectContext& ctx, const std::string& module) {
  const json& all = ctx.predictions();
  auto it = all.find(module);
  return it != all.end() && it->is_object() ? &*it : nullptr;
}

const json* prediction_of(EffectContext& ctx, const std::string& path) {
  const json* all = module_predictions(ctx, "sqlite");
  if (!all) return nullptr;
  auto it = all->find(abs_path(path));
  return it == all->end() ? nullptr : &*it;
}

// What `path` will hold, as a prediction: its own one, else { from = path }.
json source_of(EffectContext& ctx, const std::string& path) {
  const json* p = prediction_of(ctx, path);
  return p ? *p : json{{"from", abs_path(path)}};
}

void set_prediction(EffectContext& ctx, const std::string& path, json p) {
  json& all = ctx.predictions()["sqlite"];
  if (!all.is_object()) all = json::object();
  all[abs_path(path)] = std::move(p);
}

// Whether another module's planned change may create files (then a missing file is not proof
// that the live run fails).
bool other_planned_files(EffectContext& ctx) {
  const json* fs = module_predictions(ctx, "fs");
  return fs && !fs->empty();
}

// A probe of a database the plan changes: run against the file it will hold, or unknown.
template <typename F>
json predicted_probe(EffectContext& ctx, const Args& a, F&& probe) {
  const json* p = prediction_of(ctx, a.str("db"));
  if (!p) return nullptr;
  if (p->contains("unknown"))
    return unknown_value(a.effect() + " after " + (*p)["unknown"].get<std::string>());
  std::string from = (*p)["from"].get<std::string>();
  // Not there (an --offline rehearsal's planned path, a file another module's change makes):
  // what it will hold is not known here.
  if (!db_exists(from)) return unknown_value(a.effect() + " after a restore from " + from);
  json raw = a.raw();
  raw["db"] = from;
  Args on(a.effect(), raw);
  return guarded(ctx, [&] { return probe(on); });
}

// A lock, a busy file or Ctrl-C: the preview cannot look, which says nothing about the live run.
bool transient(EffectContext& ctx, const std::string& msg) {
  ctx.check_interrupt();
  return msg.find("locked") != std::string::npos || msg.find("busy") != std::string::npos ||
         msg.find("interrupted") != std::string::npos;
}

// What a restore would refuse of its backup: missing, a directory, unreadable, not a database,
// damaged. Throws WouldFail (or EffectError when it cannot look).
void check_backup(EffectContext& ctx, const Args& a, const std::string& from) {
  std::error_code ec;
  if (!stdfs::exists(from, ec)) {
    if (other_planned_files(ctx))
      throw EffectError("backup " + from + " does not exist (yet: a planned change may create it)");
    throw WouldFail("backup " + from + " does not exist");
  }
  if (stdfs::is_directory(from, ec)) throw WouldFail("backup " + from + " is a directory");
  std::vector<std::string> problems;
  try {
    Db src(from, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
    problems = sqlite::integrity_problems(src, true);
  } catch (const EffectError& e) {
    if (transient(ctx, e.what())) throw;
    problems.push_back(e.what());
  }
  if (!problems.empty())
    throw WouldFail("backup " + from + " is damaged (" + join(problems, "; ") + "); nothing was changed");
}

// Above this size a script is not rehearsed on an in-memory copy; only its first statement is
// prepared.
constexpr uint64_t kRehearseMax = 64ull << 20;

// sqlite.exec's rehearsal: the script on an in-memory copy of what the database will hold, so
// the live file is never opened for writing. { affected } or { skipped = why }; WouldFail when
// the script fails there as it would live.
json rehearse(EffectContext& ctx, const Args& a, const std::string& source,
              const std::vector<std::string>& statements) {
  for (const auto& st : statements) {
    std::string k = first_keyword(st);
    // They reach other files (ATTACH, VACUUM INTO): never run in a preview.
    if (k == "ATTACH" || k == "DETACH" || k == "VACUUM")
      return json{{"skipped", "the script uses " + k}};
  }
  try {
    Db src(source, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
    if (file_size(source) > kRehearseMax) {
      Stmt first(src, statements[0]);  // what the live run meets first
      if (!first.empty()) first.bind(a.at("params"));
      return json{{"skipped", "the database is larger than " + size_text(kRehearseMax) +
                                  "; only the first statement was prepared"}};
    }
    Db mem(":memory:", OpenMode::Create, busy_wait(ctx, a), stopper(ctx));
    sqlite3_limit(mem.get(), SQLITE_LIMIT_ATTACHED, 0);
    sqlite::BackupHooks hooks;
    hooks.stop = stopper(ctx);
    hooks.max_wait = busy_wait(ctx, a);
    sqlite::backup_copy(src, mem, hooks);
    json out = run_script(a, mem, statements);
    return json{{"affected", out["affected"]}};
  } catch (const EffectError& e) {
    std::string msg = e.what();
    if (transient(ctx, msg)) throw;
    if (msg.find("too many attached") != std::string::npos)
      return json{{"skipped", "the script attaches another database"}};
    throw WouldFail(msg);
  }
}

}  // namespace

void register_sqlite(Registry& r) {
  {
    Effect e;
    e.name = "sqlite.backup";
    e.summary = "Copy a live SQLite database with the online backup API (consistent while others write)";
    e.kind = Kind::Change;
    e.args = {req("db", ArgType::Path, "the database file"),
              opt("to", ArgType::Path,
                  "the backup file, or a directory for <name>.bak-YYYYmmdd-HHMMSS (default: beside db)"),
              timeout_arg()};
    e.positional = {"db", "to"};
    e.returns = "{ path, size, sha256, tables = { name = rows }, previous = artifact of a replaced file or nil }";
    e.results = {{"path", "string", "the backup file"}, {"size", "integer", "bytes"}, {"sha256", "string", "of the file"}, {"tables", "map", "name → rows"}, {"previous", "string", "artifact of a replaced file, or nil"}};
    e.describe = [](const Args& a) {
      return "back up SQLite " + a.str("db") + (a.has("to") ? " to " + a.str("to") : "");
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      require_db(a.str("db"));
      json src = inspect(ctx, a.str("db"), a);
      std::string to = backup_target(a);
      json out{{"text", "copies " + src["text"].get<std::string>() + " → " + to +
                            (db_exists(to) ? " (replacing " + size_text(file_size(to)) + ", kept in artifacts)" : "")},
               {"path", to},
               {"size", src["size"]},
               {"tables", src.value("tables", json::object())}};
      return out;
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&]() -> json {
        std::string db = a.str("db");
        require_db(db);
        std::string to = backup_target(a);
        if (abs_path(to) == abs_path(db)) throw EffectError("to is the database itself");
        bool named = a.has("to") && to == abs_path(a.str("to"));
        if (!named) to = os::unique_path(to);
        stdfs::create_directories(stdfs::path(to).parent_path());
        json previous = nullptr;
        if (named && db_exists(to)) {
          std::string rel = to.substr(1);
          previous = os::unique_path(ctx.artifact_dir() + "/replaced/" + rel);
          stdfs::create_directories(stdfs::path(previous.get<std::string>()).parent_path());
          os::copy_path(to, previous.get<std::string>());
        }
        Copied c = backup_file(ctx, a, db, to);
        return json{{"path", to}, {"size", file_size(to)}, {"sha256", sha256_file(to)},
                    {"tables", c.tables}, {"previous", previous}};
      });
    };
    e.planned = [](const Args& a, const json& pv) {
      json out{{"path", backup_target(a)}, {"size", 0}, {"sha256", ""}, {"tables", json::object()}};
      if (pv.is_object())
        for (const char* k : {"path", "size", "tables"})
          if (pv.contains(k)) out[k] = pv[k];
      return out;
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json& planned) {
      set_prediction(ctx, planned.value("path", backup_target(a)), source_of(ctx, a.str("db")));
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "sqlite.restore";
    e.summary = "Put a backup back into a database through the backup API; the current file is kept first";
    e.kind = Kind::Change;
    e.args = {req("db", ArgType::Path, "the database to restore (created if missing)"),
              req("from", ArgType::Path, "the backup to restore from"),
              opt("backup", ArgType::Bool, "keep the current database in the run's artifacts first", true),
              timeout_arg()};
    e.positional = {"db", "from"};
    e.returns = "{ restored = db path, from, backup = artifact path of the previous database or nil, tables, size }";
    e.results = {{"restored", "string", "db path"}, {"from", "string", "the backup"}, {"backup", "string", "artifact path of the previous database, or nil"}, {"tables", "map", "name → rows"}, {"size", "integer", "bytes"}};
    e.describe = [](const Args& a) { return "restore SQLite " + a.str("db") + " from " + a.str("from"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string from_path = abs_path(a.str("from"));
      if (abs_path(a.str("db")) == from_path) throw WouldFail("from is the database itself");
      json basis = nullptr;
      if (const json* planned = prediction_of(ctx, from_path)) {
        // A backup the plan makes (or changes): what it will hold is not on disk yet.
        std::string text = "restores " + a.str("db") + " from " + from_path + " (as the plan leaves it)";
        if (planned->contains("from")) text += ": " + (*planned)["from"].get<std::string>() + " now";
        return json{{"text", text}, {"current", inspect(ctx, a.str("db"), a)}};
      }
      check_backup(ctx, a, from_path);
      try {
        basis = json{{"sha256", sha256_file(from_path)}};
      } catch (const std::runtime_error& e) {
        throw EffectError(e.what());
      }
      json from = inspect(ctx, a.str("from"), a);
      json cur = inspect(ctx, a.str("db"), a);
      std::string text = cur["exists"].get<bool>()
                             ? "replaces " + cur["text"].get<std::string>() + " with " +
                                   from["text"].get<std::string>() +
                                   (a.boolean("backup", true) ? "; the current file is kept in artifacts" : "")
                             : "creates " + a.str("db") + " from " + from["text"].get<std::string>();
      return json{{"text", text}, {"tables", from.value("tables", json::object())},
                  {"size", from["size"]}, {"current", cur}, {"basis", basis}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&]() -> json {
        std::string db = abs_path(a.str("db")), from = abs_path(a.str("from"));
        require_db(from, "backup");
        if (db == from) throw EffectError("from is the database itself");
        {
          std::vector<std::string> problems;
          Db src(from, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
          try {
            problems = sqlite::integrity_problems(src, true);
          } catch (const EffectError& e) {
            ctx.check_interrupt();
            problems.push_back(e.what());
          }
          if (!problems.empty())
            throw EffectError("backup " + from + " is damaged (" + join(problems, "; ") + "); nothing was changed");
        }
        json kept = nullptr;
        if (db_exists(db) && a.boolean("backup", true)) kept = keep_current(ctx, a, db);
        auto restore_once = [&] {
          Db src(from, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
          Db dst(db, OpenMode::Create, busy_wait(ctx, a), stopper(ctx));
          sqlite::BackupHooks hooks;
          hooks.stop = stopper(ctx);
          hooks.max_wait = busy_wait(ctx, a);
          sqlite::backup_copy(src, dst, hooks);
        };
        try {
          restore_once();
        } catch (const EffectError& e) {
          ctx.check_interrupt();
          // A file that is no database at all cannot be written through SQLite: it is moved
          // aside (into the artifacts, not deleted) and the backup is restored into a new file.
          std::string msg = e.what();
          if (msg.find("not a database") == std::string::npos && msg.find("malformed") == std::string::npos)
            throw;
          std::string aside = move_db_files(
              db, os::unique_path(ctx.artifact_dir() + "/sqlite/" + stdfs::path(db).filename().string() + ".damaged"));
          ctx.note(db + " could not be written as a database (" + msg + "); moved to " + aside);
          if (kept.is_null()) kept = aside;
          restore_once();
        }
        Db check(db, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
        auto problems = sqlite::integrity_problems(check, false);
        json tables = sqlite::table_counts(check);
        json out{{"restored", db}, {"from", from}, {"backup", kept}, {"tables", tables},
                 {"size", file_size(db)}};
        if (!problems.empty()) {
          out["problems"] = problems;
          throw EffectError("after the restore, " + db + " fails its integrity check: " + join(problems, "; "), out);
        }
        return out;
      });
    };
    e.planned = [](const Args& a, const json& pv) {
      json out{{"restored", abs_path(a.str("db"))}, {"from", abs_path(a.str("from"))},
               {"backup", nullptr}, {"tables", json::object()}, {"size", 0}};
      if (pv.is_object()) {
        if (pv.contains("tables")) out["tables"] = pv["tables"];
        if (pv.contains("size")) out["size"] = pv["size"];
      }
      return out;
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      set_prediction(ctx, a.str("db"), source_of(ctx, a.str("from")));
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      // Done when the database holds what the backup holds (same tables, same row counts).
      if (!db_exists(a.str("db")) || !db_exists(a.str("from"))) return nullptr;
      try {
        Db d(a.str("db"), OpenMode::ReadOnly, busy_wait(ctx, a));
        Db f(a.str("from"), OpenMode::ReadOnly, busy_wait(ctx, a));
        return sqlite::table_counts(d) == sqlite::table_counts(f);
      } catch (const EffectError&) {
        return nullptr;
      }
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "sqlite.query";
    e.summary = "Rows of a read-only query (the file is opened read-only: it cannot change or be created)";
    e.args = {req("db", ArgType::Path, "the database file"),
              req("sql", ArgType::String, "one SELECT (or read-only PRAGMA); parameters as ? or :name"),
              opt("params", ArgType::Any, "a list for ?, a table for :name"),
              opt("limit", ArgType::Int, "fail rather than return more rows than this", 10000),
              timeout_arg()};
    e.positional = {"db", "sql"};
    e.returns = "list of rows { column = value }; integers and reals as numbers, NULL as nil, blobs as hex";
    e.describe = [](const Args& a) { return "query " + a.str("db") + ": " + truncate(trim(a.str("sql")), 120); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&] { return query_rows(ctx, a); });
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      return predicted_probe(ctx, a, [&](const Args& on) { return query_rows(ctx, on); });
    };
    e.planned = [](const Args&, const json&) { return json::array(); };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "sqlite.exec";
    e.summary = "Run statements that change a database (a script runs in one transaction)";
    e.kind = Kind::Change;
    e.args = {req("db", ArgType::Path, "the database file (must exist)"),
              req("sql", ArgType::String, "one statement with params, or a script of several"),
              opt("params", ArgType::Any, "a list for ?, a table for :name (one statement only)"),
              opt("transaction", ArgType::Bool,
                  "run a script of several statements in one transaction (all or nothing)", true),
              opt("limit", ArgType::Int, "at most this many rows of a RETURNING clause are kept", 10000),
              timeout_arg()};
    e.positional = {"db", "sql"};
    e.returns = "{ affected = rows changed, rows = rows returned (RETURNING), last_insert_id, statements }";
    e.results = {{"affected", "integer", "rows changed"}, {"rows", "list", "rows returned (RETURNING)"}, {"last_insert_id", "integer", "rowid"}, {"statements", "integer", "statements run"}};
    e.describe = [](const Args& a) { return "run SQL on " + a.str("db") + ": " + truncate(trim(a.str("sql")), 120); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::vector<std::string> statements;
      try {
        statements = script_of(a);
      } catch (const EffectError& err) {
        throw WouldFail(err.what());
      }
      size_t n = statements.size();
      std::string runs = "runs " + std::to_string(n) + (n == 1 ? " statement" : " statements") + " on ";
      json source = source_of(ctx, a.str("db"));
      if (source.contains("unknown"))
        return json{{"text", runs + a.str("db") + " (after " + source["unknown"].get<std::string>() +
                                 ": not rehearsed)"},
                    {"statements", n}};
      std::string from = source["from"].get<std::string>();
      try {
        require_db(from);
      } catch (const EffectError& err) {
        if (other_planned_files(ctx)) throw;  // a planned change may create it
        throw WouldFail(err.what());
      }
      json cur = inspect(ctx, from, a);
      json tried = rehearse(ctx, a, from, statements);
      json out{{"statements", n}, {"tables", cur.value("tables", json::object())}};
      std::string text = runs + cur["text"].get<std::string>();
      if (tried.contains("affected")) {
        out["affected"] = tried["affected"];
        out["basis"] = json{{"rows", tried["affected"]}};
        text += "; changes " + plural(tried["affected"].get<int64_t>(), "row", "rows") +
                " (rehearsed on an in-memory copy)";
      } else {
        text += " (" + tried["skipped"].get<std::string>() + ")";
      }
      out["text"] = text;
      return out;
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&] { return exec_script(ctx, a); });
    };
    e.planned = [](const Args&, const json& pv) {
      return json{{"affected", pv.is_object() ? pv.value("affected", json(0)) : json(0)},
                  {"rows", json::array()}, {"last_insert_id", 0},
                  {"statements", pv.is_object() ? pv.value("statements", json(0)) : json(0)}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      set_prediction(ctx, a.str("db"), json{{"unknown", "sqlite.exec on " + a.str("db")}});
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "sqlite.integrity";
    e.summary = "Whether a database passes PRAGMA integrity_check (the problems are noted)";
    e.args = {req("db", ArgType::Path, "the database file"),
              opt("quick", ArgType::Bool, "PRAGMA quick_check: faster, skips index contents", false),
              timeout_arg()};
    e.positional = {"db"};
    e.returns = "true | false";
    e.describe = [](const Args& a) { return "check the integrity of " + a.str("db"); };
    static auto check = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&]() -> json {
        std::string db = a.str("db");
        require_db(db);
        Db d(db, OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
        std::vector<std::string> problems;
        try {
          problems = sqlite::integrity_problems(d, a.boolean("quick"));
        } catch (const EffectError& err) {
          // A file that is not a database (or whose header is damaged) fails the check; a lock
          // or an interruption is an error.
          int code = sqlite3_errcode(d.get()) & 0xff;
          if (code != SQLITE_NOTADB && code != SQLITE_CORRUPT) throw;
          problems.push_back(err.what());
        }
        if (problems.empty()) return true;
        ctx.note(db + " fails its integrity check: " + join(problems, "; "));
        return false;
      });
    };
    e.apply = check;
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      return predicted_probe(ctx, a, [&](const Args& on) { return check(ctx, on); });
    };
    e.planned = [](const Args&, const json&) -> json { return true; };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "sqlite.tables";
    e.summary = "The database's tables and their row counts";
    e.args = {req("db", ArgType::Path, "the database file"), timeout_arg()};
    e.positional = {"db"};
    e.returns = "{ table = row count, ... }";
    e.results = {{"*", "map", "table name → row count"}};
    e.describe = [](const Args& a) { return "count the rows of each table in " + a.str("db"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded(ctx, [&]() -> json {
        require_db(a.str("db"));
        Db d(a.str("db"), OpenMode::ReadOnly, busy_wait(ctx, a), stopper(ctx));
        return sqlite::table_counts(d);
      });
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      return predicted_probe(ctx, a, [&](const Args& on) -> json {
        require_db(on.str("db"));
        Db d(on.str("db"), OpenMode::ReadOnly, busy_wait(ctx, on), stopper(ctx));
        return sqlite::table_counts(d);
      });
    };
    e.planned = [](const Args&, const json&) { return json::object(); };
    add(r, std::move(e));
  }
}

}  // namespace rb
