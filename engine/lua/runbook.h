// A runbook file: loaded in the sandbox, declared (`runbook{}` and `step()`), its parameters
// validated, its steps run in order through the dispatcher. `execute` is the whole of one run,
// shared by exec, replay and resume.
#pragma once
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
#include "lua/sandbox.h"

namespace rb {

enum ExitStatus { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitInterrupted = 130 };

struct ParamSpec {
  std::string name;
  std::string type = "string";  // string int number bool path url duration list
  bool required = false;
  json def = nullptr;
  bool secret = false;
  std::string doc;
  std::vector<std::string> choices;
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
};

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

  struct StepOutcome {
    std::string outcome;  // succeeded failed interrupted skipped
    std::string error;
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
  bool declared_ = false;
  size_t memory_limit_;
};

struct ExecRequest {
  std::string file;
  std::map<std::string, std::string> params;  // --param text
  std::optional<json> typed_params;           // replay/resume: the journal's values
  RunOptions options;
  int64_t parent_id = 0;
  int64_t seed = 0;  // 0: a fresh one
  std::vector<EffectRecord> recorded;  // answered instead of performed (replay/resume)
  int64_t answer_through = 0;
  std::string expect_sha256;  // replay: refuse a different file
  json extra = json::object();
  size_t memory_limit = 256u << 20;
};

struct ExecResult {
  int exit_code = kExitOk;
  int64_t run_id = 0;
  std::string outcome, error;
};

ExecResult execute(const ExecRequest& req, Journal* journal, Reporter* reporter,
                   const Registry& registry);

}  // namespace rb
