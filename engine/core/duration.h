#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace rb {

using Millis = std::chrono::milliseconds;

// The longest duration anything accepts (about 31 years): far beyond any real wait, and far
// from overflowing a steady_clock time point.
constexpr long long kMaxDurationMs = 1'000'000'000'000LL;

// Parses "500ms", "30s", "5m", "1h", "1m30s", or a bare number of seconds ("2.5").
// Returns nullopt for anything else (empty, negative, over kMaxDurationMs); callers name the
// argument in their error.
std::optional<Millis> parse_duration(std::string_view text);
// A number of seconds (a Lua number given as a duration): nullopt unless finite, >= 0 and at
// most kMaxDurationMs.
std::optional<Millis> duration_from_seconds(double seconds);

// "340ms", "4.2s", "2m05s", "1h02m".
std::string format_duration(Millis d);

}  // namespace rb
