// One JSON type for the whole engine: insertion-ordered, so plans and reports read in the
// order the runbook wrote its tables.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace rb {
using json = nlohmann::ordered_json;

// How deep JSON may nest, in both directions between Lua and JSON. Converting, copying, comparing
// and printing a json value all recurse on the C stack, so text from outside (an HTTP answer,
// a command's output) is refused past this depth when it is parsed, before anything recurses.
constexpr int kJsonMaxDepth = 200;
inline const char* json_too_deep() { return "json: nested deeper than 200 levels"; }

// Parses text from outside the engine with the depth bound. On failure returns a discarded value
// and, when `error` is given, why: json_too_deep() or "not valid JSON (...)". Every parse of
// outside text goes through here, never json::parse directly. Linear in the size of the text:
// an object with 100,000 keys costs what 100,000 array items do (json.cc says why that needs
// care with an insertion-ordered object).
json parse_json(std::string_view text, std::string* error = nullptr);

// Appends a member known not to be present yet (a Lua table's keys are unique), without the
// linear search that ordered_json's operator[] makes for every insertion.
inline void append_member(json& obj, std::string key, json value) {
  obj.get_ref<json::object_t&>().emplace_back(std::move(key), std::move(value));
}

}  // namespace rb
