#include "journal/locks.h"

#include <sqlite3.h>

#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/clock.h"
#include "journal/journal.h"

namespace rb {

std::string describe_holder(const LockHolder& h) {
  std::string since = iso_utc(h.since_ms);  // 2026-11-22T10:53:01.123Z
  std::string today = iso_utc(now_epoch_ms());
  std::string when = since.substr(0, 10) == today.substr(0, 10)
                         ? since.substr(11, 8)
                         : since.substr(0, 10) + " " + since.substr(11, 8);
  return "run #" + std::to_string(h.run_id) + " by " + h.user + "@" + h.host + " since " + when +
         ", pid " + std::to_string(h.pid);
}

namespace {

const char* kTable = R"sql(
CREATE TABLE IF NOT EXISTS run_locks(
  key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, runbook TEXT NOT NULL, user TEXT NOT NULL,
  host TEXT NOT NULL, pid INTEGER NOT NULL, start_ticks INTEGER NOT NULL,
  since_ms INTEGER NOT NULL)
)sql";

// Another process may hold the database's write lock for a while (its own begin_run fsync, a
// batch of probe rows): every write here retries on SQLITE_BUSY up to this long.
constexpr auto kBusyBudget = std::chrono::seconds(30);

std::string col_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

bool busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

class SqliteRunLocks : public RunLocks {
 public:
  SqliteRunLocks(Journal& j, HolderGone gone) : journal_(j), gone_(std::move(gone)) {
    // Its own connection: the journal's may have a batch of rows open, and the lock must be
    // taken and given back in transactions of its own.
    if (sqlite3_open_v2(j.path().c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw std::runtime_error("journal " + j.path() + ": cannot open for run locks: " + msg);
    }
    sqlite3_busy_timeout(db_, 2000);
    try {
      write([&] { exec(kTable); });
    } catch (...) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~SqliteRunLocks() override { sqlite3_close(db_); }

  LockResult acquire(const LockHolder& me) override {
    LockResult out;
    journal_.flush();
    write([&] {
      out = LockResult{};
      std::optional<LockHolder> cur = find(me.key);
      if (cur && cur->run_id != me.run_id) {
        std::string why = stale_reason(*cur);
        if (why.empty()) {
          out.held_by = cur;
          return;
        }
        out.taken_over = cur;
        out.stale_reason = why;
      }
      Stmt s(db_,
             "INSERT OR REPLACE INTO run_locks(key, run_id, runbook, user, host, pid, "
             "start_ticks, since_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
      s.text(1, me.key);
      sqlite3_bind_int64(s.s, 2, me.run_id);
      s.text(3, me.runbook);
      s.text(4, me.user);
      s.text(5, me.host);
      sqlite3_bind_int64(s.s, 6, me.pid);
      sqlite3_bind_int64(s.s, 7, static_cast<int64_t>(me.start_ticks));
      sqlite3_bind_int64(s.s, 8, me.since_ms);
      s.done();
      out.acquired = true;
    });
    return out;
  }

  void release(const std::string& key, int64_t run_id) override {
    journal_.flush();
    write([&] {
      Stmt s(db_, "DELETE FROM run_locks WHERE key = ?1 AND run_id = ?2");
      s.text(1, key);
      sqlite3_bind_int64(s.s, 2, run_id);
      s.done();
    });
  }

  std::vector<LockHolder> list() override {
    journal_.flush();
    std::vector<LockHolder> out;
    Stmt s(db_, "SELECT " + std::string(kColumns) + " FROM run_locks ORDER BY since_ms, key");
    while (s.row()) out.push_back(read(s.s));
    return out;
  }

 private:
  static constexpr const char* kColumns =
      "key, run_id, runbook, user, host, pid, start_ticks, since_ms";

  struct Failure : std::runtime_error {
    int rc;
    Failure(int code, const std::string& msg) : std::runtime_error(msg), rc(code) {}
  };

  struct Stmt {
    sqlite3* db;
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* d, const std::string& sql) : db(d) {
      int rc = sqlite3_prepare_v2(d, sql.c_str(), -1, &s, nullptr);
      if (rc != SQLITE_OK) throw Failure(rc, sqlite3_errmsg(d));
    }
    ~Stmt() { sqlite3_finalize(s); }
    void text(int i, const std::string& v) {
      sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    bool row() {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) return true;
      if (rc != SQLITE_DONE) throw Failure(rc, sqlite3_errmsg(db));
      return false;
    }
    void done() {
      int rc = sqlite3_step(s);
      if (rc != SQLITE_DONE && rc != SQLITE_ROW) throw Failure(rc, sqlite3_errmsg(db));
    }
  };

  static LockHolder read(sqlite3_stmt* s) {
    LockHolder h;
    h.key = col_text(s, 0);
    h.run_id = sqlite3_column_int64(s, 1);
    h.runbook = col_text(s, 2);
    h.user = col_text(s, 3);
    h.host = col_text(s, 4);
    h.pid = sqlite3_column_int64(s, 5);
    h.start_ticks = static_cast<uint64_t>(sqlite3_column_int64(s, 6));
    h.since_ms = sqlite3_column_int64(s, 7);
    return h;
  }

  void exec(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) throw Failure(rc, sqlite3_errmsg(db_));
  }

  std::optional<LockHolder> find(const std::string& key) {
    Stmt s(db_, "SELECT " + std::string(kColumns) + " FROM run_locks WHERE key = ?1");
    s.text(1, key);
    if (!s.row()) return std::nullopt;
    return read(s.s);
  }

  // A row is stale when its run is over in the journal (its release was lost) or its process is
  // gone (killed: nothing released it).
  std::string stale_reason(const LockHolder& h) {
    Stmt s(db_, "SELECT outcome FROM runs WHERE id = ?1");
    sqlite3_bind_int64(s.s, 1, h.run_id);
    if (s.row()) {
      std::string outcome = col_text(s.s, 0);
      if (outcome != "running")
        return "run #" + std::to_string(h.run_id) + " has ended (" + outcome + ")";
    }
    return gone_ ? gone_(h) : "";
  }

  // One write transaction: BEGIN IMMEDIATE takes the database's write lock first, so the check
  // and the insert see and change the same state; retried as a whole while another process
  // holds that lock.
  template <typename F>
  void write(F body) {
    auto give_up = std::chrono::steady_clock::now() + kBusyBudget;
    std::minstd_rand jitter(static_cast<unsigned>(reinterpret_cast<uintptr_t>(this)));
    for (;;) {
      try {
        exec("BEGIN IMMEDIATE");
        try {
          body();
          exec("COMMIT");
          return;
        } catch (...) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          throw;
        }
      } catch (const Failure& f) {
        if (!busy(f.rc) || std::chrono::steady_clock::now() > give_up)
          throw std::runtime_error("journal " + journal_.path() + ": run locks: " + f.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + jitter() % 40));
      }
    }
  }

  Journal& journal_;
  HolderGone gone_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<RunLocks> open_run_locks(Journal& j, HolderGone gone) {
  return std::make_unique<SqliteRunLocks>(j, std::move(gone));
}

}  // namespace rb
