#include "dispatch/redact.h"

#include <algorithm>

namespace rb {

void Redactor::add(const std::string& secret) {
  // An empty or one-character "secret" would redact everything; it protects nothing anyway.
  if (secret.size() < 2) return;
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.push_back(secret);
  // Longest first, so a secret that contains another is replaced whole.
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::text(std::string s) const {
  for (const auto& secret : secrets_) {
    size_t pos = 0;
    while ((pos = s.find(secret, pos)) != std::string::npos) {
      s.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return s;
}

json Redactor::value(const json& v) const {
  if (secrets_.empty()) return v;
  if (v.is_string()) return text(v.get<std::string>());
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v) out.push_back(value(e));
    return out;
  }
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string key = text(it.key());
      // Appending keeps a wide object linear; a key the redaction changed may now equal another.
      if (key == it.key())
        append_member(out, std::move(key), value(*it));
      else
        out[key] = value(*it);
    }
    return out;
  }
  return v;
}

}  // namespace rb
