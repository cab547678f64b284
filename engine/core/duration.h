#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace rb {

using Millis = std::chrono::milliseconds;

// Parses "500ms", "30s", "5m", "1h", "1m30s", or a bare number of seconds ("2.5").
// Returns nullopt for anything else; callers name the argument in their error.
std::optional<Millis> parse_duration(std::string_view text);

// "340ms", "4.2s", "2m05s", "1h02m".
std::string format_duration(Millis d);

}  // namespace rb
