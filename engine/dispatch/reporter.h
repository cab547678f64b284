// What a run tells the person (or program) watching it. The CLI implements it for a terminal and
// for --json; tests implement it to capture events. The dispatcher and the runner call it; effects
// reach it only through EffectContext::progress.
#pragma once
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"
#include "dispatch/effect.h"
#include "journal/journal.h"

namespace rb {

struct EffectEvent {
  int64_t seq = 0;
  std::string name;
  Kind kind = Kind::Probe;
  std::string describe;
  std::string status;  // running | ok | failed | planned
  json preview;        // null, a string, or an object with "text"
  std::string error;
  Millis duration{0};
  json result;
  std::string site;
  // A failure the runbook asked to handle itself (check = false): it goes on.
  bool handled = false;
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void run_begin(const RunRecord& run, const std::vector<std::string>& steps) {}
  virtual void step_begin(int idx, int total, const std::string& name, int attempt) {}
  virtual void step_end(int idx, const std::string& name, const std::string& outcome,
                        const std::string& error, Millis d) {}
  virtual void effect_begin(const EffectEvent& e) {}
  virtual void effect_end(const EffectEvent& e) {}
  // A transient status line (countdowns while waiting); replaced by the next one.
  virtual void progress(const std::string& text) {}
  virtual void log(const std::string& level, const std::string& message) {}
  virtual void run_end(const RunRecord& run) {}
};

}  // namespace rb
