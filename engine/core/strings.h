#pragma once
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

}  // namespace rb
