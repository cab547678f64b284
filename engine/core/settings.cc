#include "core/settings.h"

#include <map>

namespace rb {
namespace {
std::map<std::string, std::string>& store() {
  static std::map<std::string, std::string> s;
  return s;
}
}  // namespace

void set_setting(const std::string& key, const std::string& value) { store()[key] = value; }

std::optional<std::string> setting(const std::string& key) {
  auto it = store().find(key);
  if (it == store().end()) return std::nullopt;
  return it->second;
}

void clear_settings() { store().clear(); }

}  // namespace rb
