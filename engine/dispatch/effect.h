// An effect: the only kind of thing that may act on the world. Each primitive (`git.checkout`,
// `http.get`, `exec`) is one Effect, registered once in C++; the dispatcher decides by mode
// whether its apply() runs. Nothing else in the engine performs I/O on a runbook's behalf.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"
#include "dispatch/args.h"

namespace rb {

class EffectContext;

// probe: reads the world and changes nothing; runs in dry-run (unless --offline).
// change: mutates the world; in dry-run it is described and previewed, never applied.
// wait: polls for a state that earlier changes bring about (http.wait_healthy, sleep); in
//       dry-run it is checked once at most (its preview) and not waited for.
// input: asks the operator (confirm); in dry-run nobody is asked and the planned answer is yes.
enum class Kind { Probe, Change, Wait, Input };
const char* kind_name(Kind k);

struct Effect {
  std::string name;     // "git.checkout"; no dot for a global ("exec", "sleep")
  std::string summary;  // one line, for `runbook api`
  Kind kind = Kind::Probe;
  std::vector<ArgSpec> args;
  // Positional calls map, in order, to these argument names: fs.backup(path, dir).
  std::vector<std::string> positional;
  // The array part of a table argument goes to this argument (exec's argv), if set.
  std::string rest;
  std::string returns;  // doc of the result
  // apply() touches nothing but the run's own module state (ctx.state: service.define records a
  // definition). Such an effect is applied in every mode — also when its call is answered from
  // the journal (replay, the completed prefix of a resume) and in an --offline dry-run — so the
  // state that later calls rely on exists however the run got there.
  bool state_only = false;
  // Accepts check = false: a failure then returns its result (with ok = false) instead of raising.
  bool checkable = false;

  // When the arguments decide the kind (exec{readonly = true} is a probe).
  std::function<Kind(const Args&)> kind_for;
  // The sentence for plans and logs. Receives arguments with secrets already redacted.
  std::function<std::string(const Args&)> describe;
  // Read-only: what would change ("HEAD 1a2b3c4 → 9f8e7d6, 12 files"). A string, or an object
  // with a "text" field and data. Optional.
  std::function<json(EffectContext&, const Args&)> preview;
  // The only code allowed to act. Throws EffectError (with the observed result) on failure.
  std::function<json(EffectContext&, const Args&)> apply;
  // The result a dry-run returns instead of applying, so the runbook can keep going; it gets
  // the preview's value (or null). Optional: the default is { planned = true }.
  std::function<json(const Args&, const json& preview)> planned;
  // For resume: after a crash in the middle of this effect, tells from the world whether it took
  // place (true/false), or null when it cannot tell. Optional. It may also return
  // { done = true, result = ... }: the result the runbook would have had (fs.backup's path).
  // Without one, a verified effect answers with its planned() shape marked verified = true.
  std::function<json(EffectContext&, const Args&)> verify;
  // Secrets hidden inside ordinary arguments (the password in a DSN, a token in a URL). The
  // dispatcher registers them for redaction before the call is journaled, shown or logged.
  std::function<std::vector<std::string>(const Args&)> secrets_of;

  Kind kind_of(const Args& a) const { return kind_for ? kind_for(a) : kind; }
};

}  // namespace rb
