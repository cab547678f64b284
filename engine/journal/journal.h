// The journal: every run, step, effect and log line, in SQLite (WAL). Probe rows are batched in
// an open transaction; a change effect's "begun" row is committed with an fsync before the
// change acts, and its "finished" row is committed without one (it survives a process crash,
// which is what resume needs). So: one fsync per change, none per probe.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
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
  std::string outcome;  // running | succeeded | failed | interrupted | error
  std::string error;
  int exit_code = -1;
  int steps_total = 0;
  std::string artifacts;
  json extra = json::object();  // free-form: plan fingerprints, resume notes
  int64_t resumed_by = 0;       // the run that continued this one, 0 if none
  int64_t pid = 0;              // the process that ran it (resume refuses a run still going)
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

class Journal {
 public:
  // Opens (creating directories, the file and the schema as needed). Throws std::runtime_error
  // naming the path on failure.
  explicit Journal(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  static std::string default_path();
  static constexpr int kSchemaVersion = 2;
  const std::string& path() const { return path_; }

  int64_t begin_run(RunRecord& run);  // sets run.id
  void update_run(const RunRecord& run);
  void step_begun(const StepRecord& s);
  void step_ended(const StepRecord& s);
  // durable = true: the row is on disk (fsync) when this returns. Used for change effects.
  void effect_begun(const EffectRecord& e, bool durable);
  void effect_ended(const EffectRecord& e);
  // A whole row at once (an effect a resume answered from an earlier run's journal).
  void effect_copied(const EffectRecord& e);
  // `original` was continued by `by`; a run the process left "running" becomes "crashed".
  void mark_resumed(int64_t original, int64_t by);
  // The live run that executed this plan, if any.
  std::optional<int64_t> run_of_plan(const std::string& plan_id);
  // The run did not execute its plan after all (refused at its run lock): the plan stays unused.
  void release_plan(int64_t run_id);
  void log(const LogRecord& l);
  // Commits whatever is batched. Called at step boundaries and at the end of a run.
  void flush();

  std::vector<RunRecord> runs(const RunFilter& f);
  std::optional<RunRecord> run(int64_t id);
  std::optional<int64_t> last_run_id();
  std::vector<StepRecord> steps(int64_t run_id);
  std::vector<EffectRecord> effects(int64_t run_id);
  std::vector<LogRecord> logs(int64_t run_id);

  // Counts fsync-ing commits, for tests and benchmarks of the durability policy.
  int64_t durable_commits() const { return durable_commits_; }

 private:
  void exec(const char* sql);
  void ensure_txn();
  void begin_durable();
  void commit(bool durable);
  void maybe_commit_by_age();
  sqlite3_stmt* stmt(int which, const char* sql);

  std::string path_;
  sqlite3* db_ = nullptr;
  bool in_txn_ = false;
  int64_t txn_started_ms_ = 0;
  int64_t durable_commits_ = 0;
  std::vector<sqlite3_stmt*> stmts_;
};

}  // namespace rb
