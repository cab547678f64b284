// Unknown values: what a dry-run cannot know. After a planned `service.restart`, the app's HTTP
// answer cannot be predicted; the probe returns an unknown instead of the answer of the world
// before the restart. In JSON an unknown is the object {"$unknown": "why"}; in Lua it is a value
// whose fields are unknowns too, that prints as `unknown (why)` and that marks the step: a dry-run
// step that fails after touching an unknown is "checked live only", not a failed rehearsal.
// --assume-done results carry unknowns for the fields nothing recorded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace rb {

constexpr const char* kUnknownKey = "$unknown";

// {"$unknown": why}. `why` says what the value would have been: "http.get after service.restart api".
json unknown_value(const std::string& why);
// How many unknown values this process has made: while it is 0 (every live run without
// --assume-done) nothing can hold one, and the dispatcher skips looking for them.
uint64_t unknowns_made();
bool is_unknown(const json& v);
// The reason of an unknown ("" if v is not one).
std::string unknown_why(const json& v);
// Whether v is an unknown or holds one (bounded: values deeper than the JSON limit are not searched).
bool contains_unknown(const json& v);
// The reasons of the unknowns in v, in order, at most `max`.
void unknown_reasons(const json& v, std::vector<std::string>* out, size_t max = 8);

// What an Effect's predicted() returns for a predicted nil (redis.get of a key a planned flush
// removes), since null means "not predicted"; the dispatcher hands the runbook nil.
inline json predicted_nil() { return json{{"$predicted_nil", true}}; }
inline bool is_predicted_nil(const json& v) {
  return v.is_object() && v.size() == 1 && v.contains("$predicted_nil");
}

}  // namespace rb
