// Shared by pip.* and npm.*: where their backups go, how versions compare, reading small files.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "dispatch/context.h"
#include "dispatch/registry.h"
#include "effects/util.h"

namespace rb::pkg {

void register_pip(Registry& r);
void register_npm(Registry& r);

// The file's text; EffectError naming the path when it cannot be read.
std::string read_text(const std::string& path);
json read_json(const std::string& path);

// A fresh path in the run's artifacts for something about `subject` (a venv, a project dir):
// <artifacts>/<kind>/<subject with / as _>-<stamp><suffix>.
std::string artifact_path(EffectContext& ctx, const std::string& kind, const std::string& subject,
                          const std::string& suffix);

// "4.23" and "4.23.0" are the same release (PEP 440; npm never writes the short form).
// A leading "v" or "==" is ignored; anything after the release numbers must match exactly.
bool same_version(const std::string& a, const std::string& b);

// "a 1.0 → 2.0, b already at 3.0": the preview and error sentences of pin effects.
struct VersionChange {
  std::string name;  // as the caller spelled it
  std::string from;  // empty: not installed
  std::string to;
};
std::string change_text(const std::vector<VersionChange>& changes);
// { name = { from =, to = } } for those that change, and { name = version } for the rest.
json changed_json(const std::vector<VersionChange>& changes);
json unchanged_json(const std::vector<VersionChange>& changes);
// A pin's preview: { text, changed, unchanged }.
json change_preview(const std::vector<VersionChange>& changes);

// The password of a URL's userinfo (https://user:token@host/), for secrets_of.
std::vector<std::string> url_secrets(const std::vector<std::string>& urls);

// Throws EffectError "'npm' not found on PATH" before anything is backed up or changed.
void need_program(const std::string& program);

// --- dry-run predictions (EffectContext::predictions) ---
// Layout, per module ("pip", "npm") and subject (a venv's or a project's absolute path):
//   { "changes": { key: version }, a version being "1.2.3", null (removed) or an unknown (pip:
//                 { "name": as spelled, "version": ... }, keyed by the normalized name),
//     "others": "live" | "absent" | unknown,   -- the packages `changes` does not name
//     "by": the describe of the last planned change }
// A planned change updates the entry; a probe overlays it on what is installed now.

// The entry of `subject`, or nullptr when no planned change touched it.
const json* prediction_of(EffectContext& ctx, const std::string& module, const std::string& subject);
// The entry of `subject`, created ({ changes = {}, others = "live" }) if needed.
json& prediction_for(EffectContext& ctx, const std::string& module, const std::string& subject);
// What another module's planned change made unpredictable here (predictions.taint.<module>), or "".
std::string taint_of(EffectContext& ctx, const std::string& module);
// Whether a planned change of another module may have made `path` exist or change: a taint of
// `module`, or a path in another module's predictions that is `path`, below it or above it.
bool touched_elsewhere(EffectContext& ctx, const std::string& module, const std::string& path);
// For previews: throws WouldFail(msg) — the live call would fail — unless a planned change of
// another module may have changed `path` meanwhile; then EffectError(msg): cannot look.
[[noreturn]] void would_fail(EffectContext& ctx, const std::string& module, const std::string& path,
                             const std::string& msg);
// The file's sha256, or null when it does not exist or cannot be read (for a preview's basis).
json sha256_or_null(const std::string& path);

}  // namespace rb::pkg
