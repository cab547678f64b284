// report RUN --format html: the incident record as one self-contained page (inline CSS and SVG,
// no script, nothing fetched), for the post-mortem meeting: the header, a timeline drawn to scale,
// what changed, the backups, the failures with file:line, the runs of the incident.
#pragma once
#include <string>

#include "core/json.h"

namespace rb::cli {

// Renders report_json()'s record. Every text is escaped; the journal's values are already
// redacted. At most kMaxDrawnEffects effects are drawn in the chart (all are listed below it).
constexpr size_t kMaxDrawnEffects = 2000;
std::string report_html(const json& report);

}  // namespace rb::cli
