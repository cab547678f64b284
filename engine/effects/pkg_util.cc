#include "effects/pkg_util.h"

#include <cctype>
#include <filesystem>

#include "core/clock.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/unknown.h"
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
    // A token alone in the user part (https://TOKEN@host) is as secret as a password; a plain
    // user name (ssh://git@host, https://deploy@host) is not, and registering one would redact
    // every "git" in every line. So a user part alone counts only when it is token-sized and the
    // scheme is not ssh's (whose user is never a credential).
    std::string scheme_name = u.substr(0, scheme);
    bool ssh = scheme_name.find("ssh") != std::string::npos;
    if (colon == std::string::npos && (ssh || userinfo.size() < 16)) continue;
    std::string secret = colon == std::string::npos ? userinfo : userinfo.substr(colon + 1);
    if (!secret.empty()) out.push_back(secret);
  }
  return out;
}

void need_program(const std::string& program) {
  if (os::which(program).empty()) throw EffectError(os::not_found_text(program));
}

const json* prediction_of(EffectContext& ctx, const std::string& module,
                          const std::string& subject) {
  const json& all = ctx.predictions();
  if (!all.is_object()) return nullptr;
  auto m = all.find(module);
  if (m == all.end() || !m->is_object()) return nullptr;
  auto s = m->find(subject);
  if (s == m->end() || !s->is_object()) return nullptr;
  return &*s;
}

json& prediction_for(EffectContext& ctx, const std::string& module, const std::string& subject) {
  json& all = ctx.predictions();
  if (!all.is_object()) all = json::object();
  json& m = all[module];
  if (!m.is_object()) m = json::object();
  json& s = m[subject];
  if (!s.is_object() || !s.contains("changes") || !s["changes"].is_object())
    s = json{{"changes", json::object()}, {"others", "live"}, {"by", ""}};
  return s;
}

std::string taint_of(EffectContext& ctx, const std::string& module) {
  const json& all = ctx.predictions();
  if (!all.is_object() || !all.contains("taint") || !all["taint"].is_object()) return "";
  auto it = all["taint"].find(module);
  if (it == all["taint"].end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

namespace {

bool related_path(const std::string& s, const std::string& path) {
  if (s.empty() || s.front() != '/' || path.empty()) return false;
  auto below = [](const std::string& a, const std::string& b) {  // a is b or below b
    return a.size() >= b.size() && a.compare(0, b.size(), b) == 0 &&
           (a.size() == b.size() || b.back() == '/' || a[b.size()] == '/');
  };
  return below(s, path) || (s != "/" && below(path, s));
}

}  // namespace

bool touched_elsewhere(EffectContext& ctx, const std::string& module, const std::string& path) {
  if (!taint_of(ctx, module).empty()) return true;
  const json& all = ctx.predictions();
  if (!all.is_object()) return false;
  std::vector<const json*> todo;
  for (auto it = all.begin(); it != all.end(); ++it)
    if (it.key() != module && it.key() != "taint") todo.push_back(&*it);
  // Bounded: predictions are small; a huge one is not searched past this many values.
  size_t budget = 200'000;
  while (!todo.empty() && budget-- > 0) {
    const json* v = todo.back();
    todo.pop_back();
    if (v->is_string()) {
      if (related_path(v->get_ref<const std::string&>(), path)) return true;
    } else if (v->is_object()) {
      for (auto it = v->begin(); it != v->end(); ++it) {
        if (related_path(it.key(), path)) return true;
        todo.push_back(&*it);
      }
    } else if (v->is_array()) {
      for (const auto& x : *v) todo.push_back(&x);
    }
  }
  return false;
}

void would_fail(EffectContext& ctx, const std::string& module, const std::string& path,
                const std::string& msg) {
  if (touched_elsewhere(ctx, module, path))
    throw EffectError(msg + " (now; a planned change before this one may change that)");
  throw WouldFail(msg);
}

json sha256_or_null(const std::string& path) {
  try {
    if (!exists(path)) return nullptr;
    return sha256_file(path);
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace rb::pkg
