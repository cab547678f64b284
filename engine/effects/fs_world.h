// What a dry-run's predicted world says of a file, for fs probes defined outside fs.cc
// (fs_logs.cc: fs.grep, fs.tail).
#pragma once
#include <string>

#include "core/json.h"
#include "dispatch/context.h"

namespace rb {

// null when no planned change touched `path` (read the file as it is); the planned text when a
// change will leave known content there; an unknown when it will leave something unknown.
// Throws EffectError when a planned change removes it, as reading a missing file would.
json fs_planned_text(EffectContext& ctx, const std::string& probe, const std::string& path);

// Records, for a planned change defined outside fs.cc (compose.set_image), that it leaves the
// file `path` with `content` (kept within the run's prediction budget; null: not known). `by`
// is the change's description.
void fs_plan_file(EffectContext& ctx, const std::string& path, const json& content, const std::string& by);

}  // namespace rb
