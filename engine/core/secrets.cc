#include "core/secrets.h"

#include <cctype>

namespace rb {

std::string url_password(std::string_view v) {
  size_t scheme = v.find("://");
  if (scheme == std::string_view::npos) return "";
  size_t start = scheme + 3;
  std::string_view authority = v.substr(start, v.find_first_of("/?#", start) - start);
  // The last '@' ends the userinfo: a password may itself contain '@'.
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string_view userinfo = authority.substr(0, at);
  size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos || colon + 1 >= userinfo.size()) return "";
  return std::string(userinfo.substr(colon + 1));
}

std::vector<std::string> embedded_secrets(std::string_view v) {
  std::vector<std::string> out;
  if (std::string pw = url_password(v); !pw.empty()) out.push_back(pw);
  for (size_t pos = v.find("password="); pos != std::string_view::npos; pos = v.find("password=", pos + 9)) {
    size_t b = pos + 9, e = v.find_first_of(" &", b);
    std::string_view pw = v.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    if (!pw.empty()) out.emplace_back(pw);
  }
  return out;
}

bool secret_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const char* word : {"PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH"})
    if (upper.find(word) != std::string::npos) return true;
  return false;
}

}  // namespace rb
