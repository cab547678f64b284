#include "effects/pkg_util.h"

#include <cctype>
#include <filesystem>

#include "core/clock.h"
#include "core/error.h"
#include "os/files.h"
#include "os/process.h"

namespace rb::pkg {
namespace stdfs = std::filesystem;

std::string read_text(const std::string& path) {
  try {
    return os::read_file(path);
  } catch (const std::exception& e) {
    throw EffectError(e.what());
  }
}

json read_json(const std::string& path) {
  std::string text = read_text(path);
  std::string why;
  json j = parse_json(text, &why);
  if (j.is_discarded()) throw EffectError(path + " is not valid JSON: " + why);
  return j;
}

std::string artifact_path(EffectContext& ctx, const std::string& kind, const std::string& subject,
                          const std::string& suffix) {
  std::string flat = abs_path(subject);
  while (!flat.empty() && flat.front() == '/') flat.erase(0, 1);
  while (!flat.empty() && flat.back() == '/') flat.pop_back();
  for (auto& c : flat)
    if (c == '/') c = '_';
  std::string dir = ctx.artifact_dir() + "/" + kind;
  std::error_code ec;
  stdfs::create_directories(dir, ec);
  if (ec) throw EffectError("cannot create " + dir + ": " + ec.message());
  // The counter goes before the suffix (x-…-2-freeze.txt), so the name keeps its extension.
  std::string base = dir + "/" + flat + "-" + stamp_local(now_epoch_ms());
  std::string path = base + suffix;
  for (int i = 2; exists(path); ++i) path = base + "-" + std::to_string(i) + suffix;
  return path;
}

namespace {

std::string version_core(std::string v) {
  while (!v.empty() &&
         (v.front() == ' ' || v.front() == '=' || v.front() == 'v' || v.front() == 'V'))
    v.erase(0, 1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  return v;
}

}  // namespace

bool same_version(const std::string& a, const std::string& b) {
  std::string x = version_core(a), y = version_core(b);
  auto split_release = [](const std::string& v, std::vector<long>& nums) {
    size_t i = 0;
    while (i < v.size()) {
      size_t j = i;
      while (j < v.size() && std::isdigit(static_cast<unsigned char>(v[j]))) ++j;
      if (j == i) break;
      nums.push_back(std::stol(v.substr(i, std::min<size_t>(j - i, 15))));
      i = j;
      if (i < v.size() && v[i] == '.' && i + 1 < v.size() &&
          std::isdigit(static_cast<unsigned char>(v[i + 1])))
        ++i;
      else
        break;
    }
    while (!nums.empty() && nums.back() == 0) nums.pop_back();
    std::string rest = v.substr(i);
    for (auto& c : rest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return rest;
  };
  std::vector<long> nx, ny;
  std::string rx = split_release(x, nx), ry = split_release(y, ny);
  if (nx.empty() && ny.empty()) return x == y;
  return nx == ny && rx == ry;
}

std::string change_text(const std::vector<VersionChange>& changes) {
  std::string out;
  for (const auto& c : changes) {
    if (!out.empty()) out += ", ";
    if (!c.from.empty() && same_version(c.from, c.to))
      out += c.name + " already at " + c.from;
    else
      out += c.name + " " + (c.from.empty() ? "not installed" : c.from) + " → " + c.to;
  }
  return out.empty() ? "nothing to change" : out;
}

json changed_json(const std::vector<VersionChange>& changes) {
  json out = json::object();
  for (const auto& c : changes)
    if (c.from.empty() || !same_version(c.from, c.to))
      out[c.name] = json{{"from", c.from.empty() ? json(nullptr) : json(c.from)}, {"to", c.to}};
  return out;
}

json unchanged_json(const std::vector<VersionChange>& changes) {
  json out = json::object();
  for (const auto& c : changes)
    if (!c.from.empty() && same_version(c.from, c.to)) out[c.name] = c.from;
  return out;
}

json change_preview(const std::vector<VersionChange>& changes) {
  return json{{"text", change_text(changes)},
              {"changed", changed_json(changes)},
              {"unchanged", unchanged_json(changes)}};
}

std::vector<std::string> url_secrets(const std::vector<std::string>& urls) {
  std::vector<std::string> out;
  for (const auto& u : urls) {
    auto scheme = u.find("://");
    if (scheme == std::string::npos) continue;
    auto host_start = scheme + 3;
    auto at = u.find('@', host_start);
    auto slash = u.find('/', host_start);
    if (at == std::string::npos || (slash != std::string::npos && slash < at)) continue;
    std::string userinfo = u.substr(host_start, at - host_start);
    auto colon = userinfo.find(':');
    // A token alone in the user part (https://TOKEN@host) is as secret as a password.
    std::string secret = colon == std::string::npos ? userinfo : userinfo.substr(colon + 1);
    if (!secret.empty()) out.push_back(secret);
  }
  return out;
}

void need_program(const std::string& program) {
  if (os::which(program).empty()) throw EffectError(os::not_found_text(program));
}

}  // namespace rb::pkg
