#include "core/strings.h"

#include <fnmatch.h>

#include <charconv>
#include <cmath>

namespace rb {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string display_quote(std::string_view s) {
  if (!s.empty() && s.find_first_of(" \t\n'\"\\$`*?[]{}();<>|&!#~") == std::string_view::npos)
    return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string display_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i) out += ' ';
    out += display_quote(argv[i]);
  }
  return out;
}

std::string truncate(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "…";
}

bool glob_match(std::string_view pattern, std::string_view name) {
  return fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Consumes one or more characters of [0-9A-Za-z.-] from s at i.
bool semver_ids(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && (is_alnum(s[i]) || s[i] == '.' || s[i] == '-')) ++i;
  return i > start;
}

}  // namespace

bool is_plain_name(std::string_view s) {
  if (s.empty() || !is_alnum(s[0])) return false;
  for (char c : s)
    if (!(is_alnum(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

bool is_semver(std::string_view s) {
  size_t i = 0;
  for (int part = 0; part < 3; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start) return false;
  }
  if (i < s.size() && s[i] == '-' && !semver_ids(s, ++i)) return false;
  if (i < s.size() && s[i] == '+' && !semver_ids(s, ++i)) return false;
  return i == s.size();
}

bool is_url(std::string_view s) {
  size_t sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0 || !is_alpha(s[0])) return false;
  for (size_t i = 1; i < sep; ++i)
    if (!(is_alnum(s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-')) return false;
  std::string_view rest = s.substr(sep + 3);
  if (rest.empty()) return false;
  for (char c : rest)
    if (is_blank(c)) return false;
  return true;
}

bool is_lower_hex(std::string_view s, size_t min_len, size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s)
    if (!(is_digit(c) || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);  // from_chars takes '-' but not '+'
  if (s.empty() || s[0] == '+') return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_finite(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  // Only digits, signs, '.', and an exponent: from_chars would also take "nan" and "inf".
  if (s.empty() || s[0] == '+') return std::nullopt;
  for (char c : s)
    if (!(is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
      return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace rb
