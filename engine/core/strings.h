#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rb {

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string trim(std::string_view s);
// For display only (plans, logs): quotes an argv element the way a reader expects. Never used
// to build a command; commands are argv.
std::string display_quote(std::string_view s);
std::string display_argv(const std::vector<std::string>& argv);
// Keeps at most `max` bytes, marking the cut.
std::string truncate(std::string_view s, size_t max);
// Shell-style glob on one name: * ? [abc]. Used by fs.glob and fs.latest.
bool glob_match(std::string_view pattern, std::string_view name);

// Hand-written checks, linear in the input and without recursion (the standard library's regex recurses per
// character and overflows the stack on a few tens of KB).
// A runbook name: a letter or digit, then letters, digits, '.', '_', '-'.
bool is_plain_name(std::string_view s);
// Semantic version: 1.2.3, with an optional -prerelease and +build of [0-9A-Za-z.-].
bool is_semver(std::string_view s);
// scheme://rest, the scheme a letter then letters, digits, '+', '.', '-'; rest non-empty and
// without whitespace.
bool is_url(std::string_view s);
// Lower-case hex digits only, between min_len and max_len of them (a git commit id).
bool is_lower_hex(std::string_view s, size_t min_len, size_t max_len);
// The whole text as a decimal integer ("-12"); nullopt for anything else or out of range.
std::optional<int64_t> parse_int(std::string_view s);
// The whole text as a finite decimal number ("2.5", "-1e3"); nullopt for nan, inf, overflow,
// hex, surrounding blanks or trailing text.
std::optional<double> parse_finite(std::string_view s);

}  // namespace rb
