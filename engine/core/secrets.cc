#include "core/secrets.h"

#include <algorithm>
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

std::string mask_embedded(std::string_view v) {
  std::vector<std::string> secrets = embedded_secrets(v);
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::string out(v);
  for (const auto& s : secrets) {
    if (s.empty() || s == "***") continue;
    for (size_t pos = out.find(s); pos != std::string::npos; pos = out.find(s, pos + 3))
      out.replace(pos, s.size(), "***");
  }
  return out;
}

bool holds_masked_password(std::string_view v) {
  for (const auto& s : embedded_secrets(v))
    if (s == "***") return true;
  return false;
}

bool secret_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // PASS covers PASSWORD and PASSWD.
  for (const char* word : {"PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH"})
    if (upper.find(word) != std::string::npos) return true;
  // PAT (a personal access token) only as a whole word part: GITHUB_PAT, PAT_X, not PATH.
  size_t start = 0;
  while (start <= upper.size()) {
    size_t end = start;
    while (end < upper.size() && std::isalnum(static_cast<unsigned char>(upper[end]))) ++end;
    if (upper.compare(start, end - start, "PAT") == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace rb
