// What an effect's apply/preview may use of the run: its artifact directory, its deadline, the
// interrupt flag, progress output, per-run module state. Implemented by the dispatcher.
#pragma once
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/duration.h"
#include "core/json.h"

namespace rb {

class EffectContext {
 public:
  virtual ~EffectContext() = default;
  virtual int64_t run_id() const = 0;
  // <journal dir>/artifacts/<run id>, created on first use. Backups, removed files, snapshots.
  virtual std::string artifact_dir() = 0;
  // Where artifact_dir() is (or will be), without creating it: for a dry-run's preview.
  virtual std::string artifact_path() const { return ""; }
  // The current step's deadline; effects never wait past it.
  virtual SteadyTime deadline() const = 0;
  // min(timeout, time left in the step).
  Millis bound(Millis timeout) const;
  // Throws Interrupted on Ctrl-C, DeadlineExceeded past the step deadline. Call it while waiting.
  virtual void check_interrupt() const = 0;
  virtual void progress(const std::string& text) = 0;
  // A log line attached to the current effect (journaled, shown).
  virtual void note(const std::string& text) = 0;
  virtual bool assume_yes() const = 0;
  virtual bool interactive() const = 0;
  // Per-run state of one module (the services a runbook defined, say). Survives across calls.
  virtual json& state(const std::string& module) = 0;
  // An effect that learns a secret (a password inside a DSN) registers it for redaction.
  virtual void add_secret(const std::string& secret) = 0;
  // Whether `text` contains a registered secret (a secret parameter, a DSN's password...). A
  // child's argv is world-readable in /proc/PID/cmdline: nothing holding one may go there.
  virtual bool holds_secret(std::string_view text) const {
    (void)text;
    return false;
  }
  // The dry-run's predicted world: what the changes planned so far will have made true. One JSON
  // object per run, shared by the modules, each under its own key ("fs", "git", "service", ...);
  // what one module's change makes unpredictable for another goes under "taint" (a planned
  // service restart sets taint.http: HTTP answers are then unknown). Empty outside a dry-run;
  // predict() and predicted() are only called in one.
  virtual json& predictions() = 0;
  // During verify (resume after a crash): when the effect in doubt began, epoch ms; 0 otherwise.
  virtual int64_t doubt_began_ms() const { return 0; }
};

}  // namespace rb
