// One JSON type for the whole engine: insertion-ordered, so plans and reports read in the
// order the runbook wrote its tables.
#pragma once
#include <nlohmann/json.hpp>

namespace rb {
using json = nlohmann::ordered_json;
}
