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

// `runbook test`: what a faked effect answers instead of acting (see RunOptions::fakes).
struct FakeAnswer {
  enum class Kind { Result, Fail, Timeout };
  Kind kind = Kind::Result;
  json result;          // Result: the call's result
  std::string message;  // Fail: the effect's error
};

// The test runner's side of a run under test. Under test nothing acts: a faked effect answers
// with its fake, any other with its planned result (as in an offline dry-run), and verify() is
// never asked of the world.
class Fakes {
 public:
  virtual ~Fakes() = default;
  // The fake for this call, or nullopt (the planned result answers). May throw
  // DeadlineExceeded (the test's time is up) or EffectError.
  virtual std::optional<FakeAnswer> answer(const Effect& e, const json& args) = 0;
  // True: the run stops before effect `seq` acts, as a SIGKILL would (its begun row written).
  virtual bool crash_before(int64_t seq) { return false; }
};

// What a resume does with a change that had begun but not finished when the process died.
// Verify: ask the effect's verify() and stop to ask the operator when it cannot tell.
enum class InDoubt { Verify, AssumeDone, Redo };

struct RunOptions {
  Mode mode = Mode::Live;
  bool offline = false;      // dry-run without probes
  bool yes = false;          // --yes: confirm() answers yes
  bool interactive = false;  // a terminal to ask on
  std::string artifacts_root;
  // Replay and resume: the run the runbook believes it is in (`run.id`, `run.mode`), the
  // original's, so that a runbook looking at them takes the same path. 0 / "": this run's own.
  int64_t seen_id = 0;
  std::string seen_mode;
  // `run.started` (epoch ms) the runbook sees: the original run's for replay and resume, the
  // rehearsal's while a plan is checked. 0: this run's own start.
  int64_t seen_started_ms = 0;
  InDoubt in_doubt = InDoubt::Verify;
  // `runbook test`: a live run in which nothing acts (see Fakes); no wait waits. Not owned.
  Fakes* fakes = nullptr;
  // No step's deadline is later than this (a test case's time limit).
  SteadyTime deadline_cap = SteadyTime::max();
};

struct CallResult {
  bool ok = true;
  json result;
  std::string error;
  bool bad_argument = false;  // failed with an ArgError the effect raised: a runbook bug (exit 2)
};

// A call sequence differs from the recorded one: replay/resume refuses to go on.
class Divergence : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Resume met a change that may or may not have taken place and nothing can tell which: the
// operator must choose (--assume-done or --redo). Fatal to the step, like a divergence.
class InDoubtError : public Divergence {
 public:
  using Divergence::Divergence;
};

// The journal cannot record (disk full, I/O error, read-only, deleted): the step stops at this
// effect boundary, before anything acts, like a divergence; the run's `always` steps are still
// tried (their effects go ahead only if the journal can write again).
class JournalStop : public Divergence {
 public:
  using Divergence::Divergence;
};

// A run under test stopped as if its process had been killed (Fakes::crash_before): nothing
// more runs or reaches the journal. Fatal to the run, like a divergence.
class SimulatedCrash : public Divergence {
 public:
  using Divergence::Divergence;
};

// A dry-run step keeps calling the same effect and getting values the rehearsal cannot know (a
// loop waiting for an unknown to change): the step is stopped there and is checked live only.
class RehearsalLoop : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a resume goes live: effects with seq <= answer_through are answered from the journal;
// in_doubt_seq (if not 0) began and never finished. `step`/`attempt` is the step attempt where the
// original run went wrong (0 when it crashed between steps).
struct ResumePoint {
  int64_t answer_through = 0;
  int64_t in_doubt_seq = 0;
  int step = 0, attempt = 0;
};
// Everything completed before the step attempt that went wrong is answered; inside it, what came
// before its last completed change (so the path to that change is the same) — the probes after it
// are read again live, since the operator may have fixed what they saw. A change in doubt stops
// the answering just before it.
ResumePoint resume_point(const std::vector<StepRecord>& steps,
                         const std::vector<EffectRecord>& effects);

class Dispatcher : public EffectContext {
 public:
  Dispatcher(Journal* journal, Reporter* reporter, RunOptions opts);

  const RunOptions& options() const { return opts_; }
  bool dry_run() const { return opts_.mode == Mode::DryRun; }
  Redactor& redactor() { return redactor_; }
  Reporter* reporter() { return reporter_; }
  Journal* journal() { return journal_; }
  void set_run_id(int64_t id) { run_id_ = id; }
  void set_step(int idx, int attempt, SteadyTime deadline, const std::string& name = "");
  int64_t effects_called() const { return seq_; }
  // A run under test stopped at a simulated crash (Fakes::crash_before).
  bool crashed() const { return crashed_; }

  // Effects with seq <= answer_through are answered from `recorded` (replay, and the replayed
  // prefix of a resume); later ones are live. In Replay mode every effect must be recorded.
  // A recorded change that began and never finished at seq answer_through + 1 is in doubt
  // (resume): see RunOptions::in_doubt.
  void answer_from(std::vector<EffectRecord> recorded, int64_t answer_through);
  // The recorded run's step attempts and outcome, so that an answered effect ends its step the
  // way it did then (interrupted, past its deadline), and a replay stops where the journal ends.
  // `live_attempt` (resume): the step attempt that goes live, whose ending is not reproduced.
  void recorded_run(std::vector<StepRecord> steps, std::string outcome,
                    std::pair<int, int> live_attempt = {0, 0});
  int64_t recorded_count() const { return static_cast<int64_t>(recorded_.size()); }
  int64_t answered() const { return answered_; }
  // Set when a replay or resume departed from the journal: step, effect, expected, actual.
  const json& divergence() const { return divergence_; }
  void set_divergence(json d) { divergence_ = std::move(d); }
  // Set when a resume stopped at a change in doubt: the effect, its args, the choices.
  const json& in_doubt_stop() const { return in_doubt_stop_; }

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
  std::string artifact_path() const override;
  SteadyTime deadline() const override { return deadline_; }
  void check_interrupt() const override;
  void progress(const std::string& text) override;
  void note(const std::string& text) override;
  bool assume_yes() const override { return opts_.yes; }
  bool interactive() const override { return opts_.interactive; }
  json& state(const std::string& module) override;
  void add_secret(const std::string& secret) override { redactor_.add(secret); }
  bool holds_secret(std::string_view text) const override { return redactor_.contains(text); }
  int64_t doubt_began_ms() const override { return doubt_began_ms_; }
  json& predictions() override { return predictions_; }

  // Dry-run: what the rehearsal could not check, in order: probes answered with unknowns,
  // changes whose arguments held unknowns, and (added by the step runner) steps that failed
  // after touching an unknown. Each { seq?, step, name, describe?, why }.
  const json& checked_live_only() const { return checked_live_only_; }
  void add_checked_live_only(json entry) { checked_live_only_.push_back(std::move(entry)); }

 private:
  json redact_args(const Effect& e, const Args& a) const;
  const EffectRecord* recorded_at(int64_t seq) const;
  void check_same(const EffectRecord* rec, const Effect& e, const json& shown_args,
                  const std::string& site);
  CallResult answer_recorded(const Effect& e, const Args& args, const json& shown_args,
                             const std::string& site, EffectEvent& ev);
  CallResult settle_in_doubt(const Effect& e, const Args& args, Kind kind, const json& shown_args,
                             const std::string& site, EffectEvent& ev, const EffectRecord& rec);
  CallResult perform(const Effect& e, const Args& args, Kind kind, const json& shown_args,
                     const std::string& site, EffectEvent& ev, const std::string& origin,
                     int64_t origin_run);
  CallResult finish_answer(const Effect& e, const Args& args, EffectRecord rec, EffectEvent& ev);
  void reproduce_ending(const EffectRecord& rec) const;
  void crash_point(const char* when) const;

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
  int64_t answered_ = 0;
  std::map<std::pair<int, int>, StepRecord> recorded_steps_;
  std::string recorded_outcome_;
  std::pair<int, int> live_attempt_{0, 0};
  std::string step_name_;
  json divergence_;
  json in_doubt_stop_;
  json predictions_ = json::object();
  // Dry-run: how many unknowns each call site returned in this step attempt (RehearsalLoop).
  std::map<std::string, int> unknown_sites_;
  json checked_live_only_ = json::array();
  int64_t doubt_began_ms_ = 0;
  // Test hook (RUNBOOK_CRASH_AT="before:7" | "after:7" | "done:7"): SIGKILL this process just
  // before effect 7 acts, just after it acted (before its end is journaled), or just after its
  // end is journaled. The crash tests of resume use it to die at exact effect boundaries.
  std::string crash_when_;
  int64_t crash_seq_ = 0;
  bool crashed_ = false;
  // Under test: the fake's answer, or the planned result.
  json answer_under_test(const Effect& e, const Args& args, bool* timed_out);
  // Under test the clock is virtual: an unfaked sleep moves time.now on by its duration.
  int64_t test_clock_ms_ = 0;
};

}  // namespace rb
