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

// One field of a primitive's table result: `runbook api` prints it, `runbook lint` checks reads
// of it (h.tagg: did you mean h.tag?), and test builds check every live result against it.
// type: "string" | "number" | "integer" | "boolean" | "table" | "list" | "map" | "any".
// A field named "*" of type "map" declares a result whose keys are data (a table name, a
// package name): any key is then allowed.
struct ResultField { std::string name; std::string type; std::string doc; };

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
  std::vector<ResultField> results;  // fields of a table result; empty when the result is not a table
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
  //  - When it finds that the live call would be refused or fail, it throws WouldFail (the
  //    dry-run fails here, as the live run would); EffectError means only "cannot look".
  //  - Its object may hold "basis": what the change acts on as the world is now, as plain data
  //    (the sha256 of the content a write replaces and of the source a copy or restore reads, the
  //    count and digest of the keys a delete_matching removes, the rows a statement affects, the
  //    versions a pin replaces, the commit a checkout leaves and the one it goes to). A saved plan
  //    keeps it; executing the plan previews again and refuses when the basis differs (drift).
  std::function<json(EffectContext&, const Args&)> preview;
  // The only code allowed to act. Throws EffectError (with the observed result) on failure.
  std::function<json(EffectContext&, const Args&)> apply;
  // The result a dry-run returns instead of applying, so the runbook can keep going; it gets
  // the preview's value (or null). Optional: the default is { planned = true }.
  std::function<json(const Args&, const json& preview)> planned;
  // Dry-run predictions (see EffectContext::predictions). A change's predict() records what it
  // will make true once it is planned; it gets the preview's value and the planned result.
  std::function<void(EffectContext&, const Args&, const json& preview, const json& planned)> predict;
  // A probe's answer from the predicted world, in a dry-run: null when no planned change touched
  // what it reads (it is then performed as usual); otherwise the result, marked `predicted` in
  // the output, the journal and the plan. What cannot be predicted is unknown_value(why), wholly
  // or in some fields (core/unknown.h). It may read the world (ctx and its own module's code) to
  // combine with the prediction (fs.glob: the directory as it is, plus the planned backup).
  std::function<json(EffectContext&, const Args&)> predicted;
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
