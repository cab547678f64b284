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
// outside text goes through here, never json::parse directly.
inline json parse_json(std::string_view text, std::string* error = nullptr) {
  struct TooDeep {};
  // The parser builds the value with an explicit stack (it does not recurse); the callback sees
  // how many containers enclose each one as it starts (0 for the outermost), so a 400 KB
  // "[[[[..." stops at level 201.
  auto bound = [](int depth, json::parse_event_t event, json&) {
    if (depth >= kJsonMaxDepth && (event == json::parse_event_t::object_start ||
                                  event == json::parse_event_t::array_start))
      throw TooDeep{};
    return true;
  };
  try {
    json v = json::parse(text.begin(), text.end(), bound, true);
    return v;
  } catch (const TooDeep&) {
    if (error) *error = json_too_deep();
  } catch (const json::exception& e) {
    if (error) *error = std::string("not valid JSON (") + e.what() + ")";
  }
  return json(json::value_t::discarded);
}

}  // namespace rb
