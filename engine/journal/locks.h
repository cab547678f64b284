// Run locks: one live run per target. A live run takes its runbook's lock key before its first
// change and gives it back when it ends; a second live run with the same key is refused, naming
// the holder. The lock lives beside the journal, so everyone who shares a journal shares the locks.
//
// The interface is what a journal backend implements. SQLite (here): a `run_locks` row per held
// key, taken in one BEGIN IMMEDIATE transaction (check, take over a stale row, insert, commit), so
// two processes never both win. A row outlives a process that was killed, so a row is stale when
// its run has ended in the journal or when `HolderGone` says its process is gone; only the CLI can
// tell the latter (it reads /proc, which this layer may not). PostgreSQL (issue 14): `acquire`
// takes `pg_try_advisory_lock(key hash)` on the object's own session and writes the same row for
// display; the server drops the advisory lock with the session, so a dead holder anywhere frees
// it, and the row is only what `list` and the refusal message show.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rb {

class Journal;

struct LockHolder {
  std::string key;
  int64_t run_id = 0;
  std::string runbook, user, host;
  int64_t pid = 0;
  uint64_t start_ticks = 0;  // the process's start, /proc/PID/stat field 22; 0: unknown
  int64_t since_ms = 0;      // epoch milliseconds
};

// "run #12 by deploy@db1 since 03:12:07, pid 4242" (UTC; the date too when not today).
std::string describe_holder(const LockHolder& h);

// Why a holder's process is gone ("pid 4242 is no longer running"), or "" when it may still run
// (another host, or the same process). Supplied by the CLI.
using HolderGone = std::function<std::string(const LockHolder&)>;

struct LockResult {
  bool acquired = false;
  std::optional<LockHolder> held_by;     // not acquired: who holds it
  std::optional<LockHolder> taken_over;  // acquired from a stale holder...
  std::string stale_reason;              // ...and why it was stale
};

class RunLocks {
 public:
  virtual ~RunLocks() = default;
  // Atomic across processes and hosts sharing the journal. The holder's key and run_id say what
  // and who; re-acquiring a key the same run holds succeeds.
  virtual LockResult acquire(const LockHolder& me) = 0;
  // Gives the key back if `run_id` still holds it (a lock taken over stays with its new holder).
  virtual void release(const std::string& key, int64_t run_id) = 0;
  // Every held key, oldest first (stale ones included: `runbook locks` says which).
  virtual std::vector<LockHolder> list() = 0;
};

// The locks of the journal `j` (SQLite: a `run_locks` table in the same database, created when
// missing). `gone` may be empty: then only an ended run's row is stale. Throws
// std::runtime_error naming the journal on failure.
std::unique_ptr<RunLocks> open_run_locks(Journal& j, HolderGone gone);

}  // namespace rb
