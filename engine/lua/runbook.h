// A runbook file: loaded in the sandbox, declared (`runbook{}` and `step()`), its parameters
// validated, its steps run in order through the dispatcher. `execute` is the whole of one run,
// shared by exec, replay and resume.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"
#include "dispatch/dispatcher.h"
#include "dispatch/registry.h"
#include "journal/journal.h"
#include "journal/locks.h"
#include "lua/sandbox.h"

namespace rb {

// The exit statuses (README's table, `runbook --help`):
// 0 succeeded; 1 the procedure failed (an effect failed, or the runbook called error/assert);
// 2 usage or runbook error, a runbook bug found at run time included (calling a nil value, an
// undefined global or parameter, a bad argument to a primitive, step() inside a step); 3 stopped
// at a change in doubt (resume needs --assume-done or --redo); 4 refused without acting (a
// drifted or already-executed plan, a lock held by another run); 130 interrupted.
enum ExitStatus {
  kExitOk = 0,
  kExitFailed = 1,
  kExitUsage = 2,
  kExitInDoubt = 3,
  kExitRefused = 4,
  kExitInterrupted = 130
};
// The word for an exit status in `--json` run_end and the run's extra: succeeded, failed,
// bug (2 once the run started; "usage" before), in_doubt, refused, interrupted.
std::string exit_kind(int code, bool started = true);

struct ParamSpec {
  std::string name;
  std::string type = "string";  // string int number bool path url duration list
  bool required = false;
  json def = nullptr;
  bool secret = false;
  std::string doc;
  std::vector<std::string> choices;
  bool target = false;  // names what the run acts on: part of the default lock key
};

struct StepDecl {
  std::string name;
  Millis timeout{30 * 60 * 1000};
  int retries = 0;
  Millis retry_delay{1000};
  bool always = false;  // runs even after an earlier step failed (cleanup, resume queues)
  int fn_ref = LUA_NOREF;
  std::string site;
};

struct RunbookDecl {
  std::string name, version, summary;
  std::string file;     // as given
  std::string abspath;  // absolute
  std::string sha256;
  std::vector<ParamSpec> params;
  std::vector<StepDecl> steps;
  std::string lock;  // the declared `lock = "app:{app}"`, placeholders unfilled; "" if none
};

// The key a live run of `d` with these (resolved) parameters locks: the declared `lock` with each
// `{param}` filled in, else the name plus the `target = true` parameters (`name:k=v,k=v`), else
// the name.
std::string lock_key(const RunbookDecl& d, const json& params);

// Where stdlib/ is: $RUNBOOK_STDLIB, the source tree, or the installed share directory.
std::string stdlib_dir();

class Runbook {
 public:
  explicit Runbook(const Registry& registry, size_t memory_limit = 256u << 20);
  // Loads and declares. Throws UsageError with "file:line: message".
  void load(const std::string& file);
  const RunbookDecl& decl() const { return decl_; }
  Sandbox& sandbox() { return *sandbox_; }

  // Typed parameters from `--param k=v` text and declared defaults. Throws UsageError listing
  // every problem at once. Secret values are added to `secrets`.
  json resolve_params(const std::map<std::string, std::string>& given,
                      std::vector<std::string>* secrets) const;
  // A resume's parameters: the original's (`base`, secrets redacted), with `given` applied on
  // top. Secret ones must be given again (the journal never had them). Non-secret values that
  // differ from the original are listed in `changes` as { name: { from, to } }.
  // A secret the original took from its declared default (not in `secrets_given`, the names
  // given on its command line) takes it again.
  json override_params(const json& base, const std::map<std::string, std::string>& given,
                       const std::optional<std::vector<std::string>>& secrets_given,
                       std::vector<std::string>* secrets, json* changes) const;

  struct StepOutcome {
    // succeeded failed interrupted skipped; live-only: a dry-run's step that failed after using
    // an unknown (checked live only, not a failure of the rehearsal)
    std::string outcome;
    std::string error;
    std::string why;  // live-only: why the value it used was unknown
    bool bug = false;  // failed: because the runbook is wrong (see ErrorKind): exit 2
    bool used_unknowns = false;  // succeeded in a dry-run, but used values it could not know
  };
  // Runs every step (from `first`, 1-based). Fills `run` with outcome, error and exit code.
  void run_steps(Dispatcher& d, const json& params, RunRecord& run, int first = 1);

 private:
  static int l_runbook(lua_State* L);
  static int l_step(lua_State* L);
  StepOutcome run_step(Dispatcher& d, const StepDecl& s, int idx, const json& params, int attempt);

  const Registry& registry_;
  std::unique_ptr<Sandbox> sandbox_;
  RunbookDecl decl_;
  // What went wrong before the step now running (an `always` step after a failure or Ctrl-C):
  // `run.failed` in Lua. Null while all is well.
  json trouble_;
  bool declared_ = false;
  bool declaring_ = false;  // the file's top level is running: step() is allowed
  size_t memory_limit_;
};

struct ExecRequest {
  std::string file;
  std::map<std::string, std::string> params;  // --param text (resume: changes to the original's)
  std::optional<json> typed_params;           // replay/resume: the journal's values
  RunOptions options;
  int64_t parent_id = 0;
  int64_t seed = 0;  // 0: a fresh one
  std::vector<EffectRecord> recorded;  // answered instead of performed (replay/resume)
  int64_t answer_through = 0;
  // The recorded run's steps and outcome (replay/resume), and the step attempt a resume takes
  // live; see Dispatcher::recorded_run.
  std::vector<StepRecord> recorded_steps;
  std::string recorded_outcome;
  std::pair<int, int> live_attempt{0, 0};
  std::string expect_sha256;  // replay/resume: refuse a different file
  json expect_modules;        // replay/resume: and different modules (name -> sha256)
  // Resume: the run is journaled as mode "resume", linked to parent_id (which is marked resumed);
  // parameters other than the original's are refused unless allow_param_change.
  bool resume = false;
  // typed_params are a recorded run's (secrets redacted): `params` are applied over them,
  // secrets must be given again, and changes are refused unless allow_param_change (resume and
  // plan execution).
  bool reuse_params = false;
  bool allow_param_change = false;
  // Resume: the secret parameters the original was given on its command line (its extra's
  // "secrets_given"); nullopt when not recorded.
  std::optional<std::vector<std::string>> secrets_given;
  // Parameters not given in `params` are asked of this (the CLI's --param-file, RUNBOOK_PARAM_<NAME>,
  // a prompt without echo), by declared name: (name, secret, needed) -> the text, or nullopt.
  // A resume asks it only for secrets (they were not journaled); a new run for every parameter.
  std::function<std::optional<std::string>(const std::string&, bool, bool)> param_source;
  // `params` came from the command line (-p): a secret among them draws a warning (argv is
  // readable by every user).
  bool warn_argv_secrets = false;
  std::string plan_id;  // a live run executing a saved plan (at most one run per plan)
  // With plan_id: the run row reserved for the plan when it was saved (its run.id); the run
  // claims it (Journal::claim_reserved) instead of journaling a new one, and is refused (exit 4)
  // when another process claimed it first. 0: a new run.
  int64_t claim_run_id = 0;
  json extra = json::object();
  size_t memory_limit = 256u << 20;
  // Called once the runbook is loaded, before the run is journaled: fills in what the Lua layer
  // cannot know (the CLI reads the file's git commit with libgit2 here).
  std::function<void(RunRecord&)> source_info;
  // Live runs and resumes take lock_key() from these before step 1 (null: no locking). A held
  // key is waited for up to wait_lock (polling; Ctrl-C ends the wait), then refused (exit 4).
  RunLocks* locks = nullptr;
  uint64_t start_ticks = 0;  // this process's start (/proc/self/stat), kept in the lock row
  Millis wait_lock{0};
};

struct ExecResult {
  int exit_code = kExitOk;
  int64_t run_id = 0;
  std::string outcome, error;
  json divergence;       // replay/resume departed from the journal (see Dispatcher::divergence)
  json in_doubt;         // resume stopped at a change in doubt
  json param_changes;    // resume: { name: { from, to } }
  json lock;             // refused: { key, holder: { run_id, user, host, pid, since_ms } }
  bool started = false;  // the steps ran (run_end was reported); false: refused or bad input
  int64_t effects = 0;   // effects called
  int64_t answered = 0;  // of which answered from the journal
};

ExecResult execute(const ExecRequest& req, Journal* journal, Reporter* reporter,
                   const Registry& registry);

}  // namespace rb
