// The journal: every run, step, effect and log line, in SQLite (WAL). Rows are batched in memory
// and written in short transactions: no transaction stays open while an effect runs, so other
// processes on the same journal never wait for one. A change effect's "begun" row is committed
// with an fsync before the change acts, and its "finished" row is committed at once without one
// (it survives a process crash, which is what resume needs). So: one fsync per change, none per
// probe. No SQLite type appears here: another store (PostgreSQL) can sit behind the same interface.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/json.h"

namespace rb {

struct RunRecord {
  int64_t id = 0;
  int64_t parent_id = 0;  // the run this one resumes, 0 if none
  std::string runbook, version, file, sha256;
  json modules = json::object();  // module name -> sha256
  std::string git_commit;         // empty when the file is not in a repository
  bool git_dirty = false;
  json params = json::object();  // secrets already redacted
  std::string mode;              // live | dry-run | replay | resume
  bool offline = false;
  std::string host, user, cwd;
  int64_t seed = 0;
  int64_t started_ms = 0, ended_ms = 0;
  // running | succeeded | failed | interrupted | error | refused | crashed, or "reserved": the
  // row a saved plan holds for its execution (its run id), not a run yet (see claim_reserved).
  std::string outcome;
  std::string error;
  int exit_code = -1;
  int steps_total = 0;
  std::string artifacts;
  json extra = json::object();  // free-form: plan fingerprints, resume notes
  int64_t resumed_by = 0;       // the run that continued this one, 0 if none
  int64_t pid = 0;              // the process that ran it (resume refuses a run still going)
  // That process's start time (clock ticks since boot, /proc/PID/stat field 22), so that a pid
  // reused by another process is not taken for the run; 0 when unknown (older journals).
  int64_t pid_start = 0;
  std::string plan_id;          // the saved plan this live run executed (at most one run each)
};

struct StepRecord {
  int64_t run_id = 0;
  int idx = 0;  // 1-based
  int attempt = 1;
  std::string name;
  int64_t started_ms = 0, ended_ms = 0;
  std::string outcome;  // running | succeeded | failed | interrupted | skipped
  std::string error;
};

struct EffectRecord {
  int64_t run_id = 0;
  int64_t seq = 0;  // 1-based, per run, in call order
  int step_idx = 0;
  int attempt = 1;
  std::string name;
  std::string kind;  // probe | change | wait
  json args = json::object();
  std::string describe;
  std::string state;  // begun | done | failed | planned
  json result;
  json preview;
  std::string error;
  std::string site;  // file:line of the call
  int64_t started_ms = 0, ended_ms = 0;
  // Who performed it. "" = this run; "journal" = answered from the journal of origin_run (the
  // replayed prefix of a resume); "verified" = in doubt after a crash, found done by verify;
  // "assumed" = in doubt, --assume-done; "redone" = in doubt, performed again; "in-doubt" = in
  // doubt and left so (the resume stopped to ask).
  std::string origin;
  int64_t origin_run = 0;  // the run that performed it, when origin is not ""
};

// What `runbook stats` needs of a run, without its JSON columns.
struct RunBrief {
  int64_t id = 0, parent_id = 0, started_ms = 0, ended_ms = 0, resumed_by = 0;
  std::string runbook, mode, outcome;
};

// Where a run that did not succeed went wrong, with only the columns that locate it (no
// arguments, results or previews): the last attempt of each step that did not succeed, and the
// effects that failed or never finished. resume_point() on it finds the failing step attempt and
// the change in doubt (not how far a resume may answer: that needs every effect).
struct RunOutline {
  std::vector<StepRecord> steps;
  std::vector<EffectRecord> effects;
};

struct LogRecord {
  int64_t run_id = 0;
  int64_t seq = 0;  // the effect sequence number at the time, to place it in the timeline
  int step_idx = 0;
  std::string level, message;
  int64_t at_ms = 0;
};

struct RunFilter {
  std::string runbook;
  int limit = 50;          // 0: all
  int64_t since_ms = 0;    // only runs started at or after this time
  bool oldest_first = false;
};

// The journal cannot record: disk full, I/O error, read-only, deleted, locked for too long.
// what() reads "journal: disk full (/path/journal.db: database or disk is full: No space left on
// device)".
class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Journal {
 public:
  // Opens (creating directories, the file and the schema as needed). Throws std::runtime_error
  // naming the path on failure.
  explicit Journal(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  static std::string default_path();
  static constexpr int kSchemaVersion = 4;
  // Strings in effect args, results and previews longer than this are stored once, by SHA-256,
  // in a blob table, the row keeping a reference; so is a whole value whose JSON is longer.
  static constexpr size_t kBlobMin = 64 * 1024;
  // Longer values are not stored whole: a head of kBlobMin bytes and a marker
  // "… [truncated: N bytes, sha256 H]". Log lines and errors are cut the same way at kBlobMin.
  static constexpr size_t kValueCap = 64u << 20;
  const std::string& path() const { return path_; }

  // Writes that must be on disk before the caller goes on (begin_run, a durable effect_begun)
  // throw JournalError when they cannot be written. The others never throw for a storage
  // failure: their rows stay in memory, are tried again at the next write, and failure() says
  // why until a write succeeds.
  int64_t begin_run(RunRecord& run);  // sets run.id
  void update_run(const RunRecord& run);
  // The run's own artifacts directory, known once begin_run gave it its id: recorded at once,
  // so a run that never ends (a crash) shows where its backups went.
  void set_artifacts(int64_t run_id, const std::string& dir);
  void step_begun(const StepRecord& s);
  void step_ended(const StepRecord& s);
  // durable = true: the row is on disk (fsync) when this returns. Used for change effects.
  void effect_begun(const EffectRecord& e, bool durable);
  void effect_ended(const EffectRecord& e);
  // A whole row at once (an effect a resume answered from an earlier run's journal).
  void effect_copied(const EffectRecord& e);
  // `original` was continued by `by`; a run the process left "running" becomes "crashed".
  void mark_resumed(int64_t original, int64_t by);
  // The live run that executed this plan (or is executing it), if any; a row still reserved for
  // it is not one.
  std::optional<int64_t> run_of_plan(const std::string& plan_id);
  // A saved plan's execution: `r` (r.id = the row reserved when the plan was saved, r.plan_id its
  // plan) takes the reserved row over, durably, in one statement that matches only while the row
  // is still reserved. False when it is not (another process claimed it first, or no such row).
  bool claim_reserved(RunRecord& r);
  // The claimed run did not start after all (refused at its run lock): reserved again, so the
  // plan can still execute under its run id. `r.extra` is kept (it says why).
  void unclaim(const RunRecord& r);
  // The reserved row gets the runbook, version, file, hashes and parameters of `from_run` (the
  // dry-run that made the plan).
  void fill_reserved(int64_t reserved_id, int64_t from_run);
  // Deletes a row that is still reserved (its dry-run failed or saved no plan).
  void drop_reserved(int64_t reserved_id);
  // The run did not execute its plan after all (refused at its run lock): the plan stays unused.
  void release_plan(int64_t run_id);
  void log(const LogRecord& l);
  // Writes whatever is batched. Called at step boundaries and at the end of a run. Never throws
  // for a storage failure (see failure()).
  void flush();
  // Why the journal could not write, "" when it can. An effect boundary calls check().
  const std::string& failure() const { return failure_; }
  // Tries the batched rows again; throws JournalError if the journal still cannot write.
  void check();

  // Runs, newest first; rows reserved for a plan are not runs and are left out (run(id) finds
  // them).
  std::vector<RunRecord> runs(const RunFilter& f);
  std::optional<RunRecord> run(int64_t id);
  std::optional<int64_t> last_run_id();  // reserved rows left out
  std::vector<StepRecord> steps(int64_t run_id);
  std::vector<EffectRecord> effects(int64_t run_id);
  std::vector<LogRecord> logs(int64_t run_id);
  // For stats on large journals, two queries whatever the number of runs: every run started at
  // or after since_ms (oldest first, reserved rows left out), and the outlines of those that did
  // not succeed.
  std::vector<RunBrief> run_briefs(int64_t since_ms);
  std::map<int64_t, RunOutline> outlines_not_succeeded(int64_t since_ms);

  // `runbook test`'s simulated crash: once frozen, nothing more reaches the store (rows batched
  // before freezing are written first), as if the process had died; unfrozen, writes go on.
  void set_frozen(bool frozen);
  bool frozen() const { return frozen_; }

  // Counts fsync-ing commits, for tests and benchmarks of the durability policy.
  int64_t durable_commits() const { return durable_commits_; }

  struct Store;  // the SQLite side, opaque here

 private:
  struct Row;  // one write, batched
  void queue(Row row);
  void maybe_flush();
  // Writes the batched rows, then `extra` (if any), in one transaction; false (and failure_ set)
  // if it could not. durable: committed with an fsync.
  bool write(Row* extra, bool durable);

  std::string path_;
  std::unique_ptr<Store> store_;
  std::vector<Row> pending_;
  size_t pending_bytes_ = 0;
  int64_t oldest_pending_ms_ = 0;
  std::string failure_;
  int64_t durable_commits_ = 0;
  bool frozen_ = false;
};

}  // namespace rb
