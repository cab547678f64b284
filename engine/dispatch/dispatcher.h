// The choke point. Every primitive call from a runbook arrives here: arguments are validated,
// the mode decides whether apply() runs, the journal records the call write-ahead, secrets are
// redacted, and the reporter is told. Dry-run, replay and resume are properties of this class
// alone; no effect and no binding checks the mode.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "dispatch/context.h"
#include "dispatch/effect.h"
#include "dispatch/redact.h"
#include "dispatch/reporter.h"
#include "journal/journal.h"

namespace rb {

enum class Mode { Live, DryRun, Replay };
const char* mode_name(Mode m, bool offline = false);

struct RunOptions {
  Mode mode = Mode::Live;
  bool offline = false;      // dry-run without probes
  bool yes = false;          // --yes: confirm() answers yes
  bool interactive = false;  // a terminal to ask on
  std::string artifacts_root;
};

struct CallResult {
  bool ok = true;
  json result;
  std::string error;
};

// A call sequence differs from the recorded one: replay/resume refuses to go on.
class Divergence : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Dispatcher : public EffectContext {
 public:
  Dispatcher(Journal* journal, Reporter* reporter, RunOptions opts);

  const RunOptions& options() const { return opts_; }
  bool dry_run() const { return opts_.mode == Mode::DryRun; }
  Redactor& redactor() { return redactor_; }
  Reporter* reporter() { return reporter_; }
  Journal* journal() { return journal_; }
  void set_run_id(int64_t id) { run_id_ = id; }
  void set_step(int idx, int attempt, SteadyTime deadline);
  int64_t effects_called() const { return seq_; }

  // Effects with seq <= answer_through are answered from `recorded` (replay, and the replayed
  // prefix of a resume); later ones are live. In Replay mode every effect must be recorded.
  void answer_from(std::vector<EffectRecord> recorded, int64_t answer_through);

  // Validates, then performs, plans or answers the effect. ArgError and Divergence propagate;
  // Interrupted and DeadlineExceeded propagate after being journaled; an EffectError becomes
  // CallResult{ok = false} (the binding raises it, or returns it under check = false).
  CallResult call(const Effect& e, json args, const std::string& site);

  void log(const std::string& level, const std::string& message);

  // What the runbook may know of its run (the `run` global): id, mode, dry_run, offline.
  json run_info() const;
  // Waits between step attempts: really only when live; at once otherwise. False on Ctrl-C.
  bool pause(Millis d);

  // EffectContext
  int64_t run_id() const override { return run_id_; }
  std::string artifact_dir() override;
  SteadyTime deadline() const override { return deadline_; }
  void check_interrupt() const override;
  void progress(const std::string& text) override;
  void note(const std::string& text) override;
  bool assume_yes() const override { return opts_.yes; }
  bool interactive() const override { return opts_.interactive; }
  json& state(const std::string& module) override;
  void add_secret(const std::string& secret) override { redactor_.add(secret); }

 private:
  json redact_args(const Effect& e, const Args& a) const;
  CallResult answer_recorded(const Effect& e, const Args& args, const json& shown_args,
                             const std::string& site, EffectEvent& ev);

  Journal* journal_;
  Reporter* reporter_;
  RunOptions opts_;
  Redactor redactor_;
  int64_t run_id_ = 0;
  int64_t seq_ = 0;
  int step_idx_ = 0;
  int attempt_ = 1;
  SteadyTime deadline_ = SteadyTime::max();
  std::string artifact_dir_;
  std::map<std::string, json> state_;
  std::vector<EffectRecord> recorded_;
  int64_t answer_through_ = 0;
};

}  // namespace rb
