#include "core/duration.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rb {

std::optional<Millis> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i) return std::nullopt;
    std::string num(text.substr(start, i - start));
    char* end = nullptr;
    double v = std::strtod(num.c_str(), &end);
    if (end == num.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
    size_t ustart = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(ustart, i - ustart);
    double mult;
    if (unit.empty()) {
      if (any || i != text.size()) return std::nullopt;  // a bare number stands alone
      mult = 1000;
    } else if (unit == "ms") {
      mult = 1;
    } else if (unit == "s") {
      mult = 1000;
    } else if (unit == "m") {
      mult = 60'000;
    } else if (unit == "h") {
      mult = 3'600'000;
    } else {
      return std::nullopt;
    }
    total_ms += v * mult;
    any = true;
  }
  if (!(total_ms <= static_cast<double>(kMaxDurationMs))) return std::nullopt;
  return Millis(static_cast<long long>(std::llround(total_ms)));
}

std::optional<Millis> duration_from_seconds(double seconds) {
  double ms = seconds * 1000;
  // Written so that NaN fails too.
  if (!(ms >= 0 && ms <= static_cast<double>(kMaxDurationMs))) return std::nullopt;
  return Millis(static_cast<long long>(std::llround(ms)));
}

std::string format_duration(Millis d) {
  long long ms = d.count();
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, (ms / 1000) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, (ms / 60'000) % 60);
  }
  return buf;
}

}  // namespace rb
