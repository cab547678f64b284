// npm.*: a Node project's dependencies. What is installed is read from node_modules/*/package.json
// directly (what Node itself loads); npm runs only to change things, with audit, fund and the
// update notifier off so that it needs the registry only for packages it must download.
#include <algorithm>
#include <filesystem>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>

#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/pkg_util.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb::pkg {
namespace {
namespace stdfs = std::filesystem;

std::string dir_of(const Args& a) { return abs_path(a.str("dir")); }

json require_project(const std::string& dir) {
  if (!exists(dir)) throw EffectError("no such directory: " + dir);
  if (!exists(dir + "/package.json")) throw EffectError("no package.json in " + dir);
  return read_json(dir + "/package.json");
}

std::string version_in(const std::string& pkg_dir) {
  try {
    json j = parse_json(os::read_file(pkg_dir + "/package.json"));
    if (j.contains("version") && j["version"].is_string()) return j["version"].get<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

// Top level of node_modules (what require() finds first), scoped packages included.
std::map<std::string, std::string> node_modules(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  std::string nm = dir + "/node_modules";
  for (auto it = stdfs::directory_iterator(nm, ec); !ec && it != stdfs::directory_iterator();
       it.increment(ec)) {
    std::string fn = it->path().filename().string();
    if (fn.empty() || fn.front() == '.') continue;
    if (fn.front() == '@') {
      std::error_code ec2;
      for (auto s = stdfs::directory_iterator(it->path(), ec2);
           !ec2 && s != stdfs::directory_iterator(); s.increment(ec2)) {
        std::string v = version_in(s->path().string());
        if (!v.empty()) out[fn + "/" + s->path().filename().string()] = v;
      }
      continue;
    }
    std::string v = version_in(it->path().string());
    if (!v.empty()) out[fn] = v;
  }
  return out;
}

bool valid_name(const std::string& n) {
  std::string rest = n;
  if (!rest.empty() && rest.front() == '@') {
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash < 2) return false;
    rest = rest.substr(slash + 1);
  }
  if (rest.empty() || rest.front() == '.' || rest.front() == '-' || rest.front() == '_')
    return false;
  for (char c : rest)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '~')
      return false;
  return n.size() <= 214;
}

// 1.2.3, v1.2.3, 1.2.3-rc.1+build: what --save-exact can record and what equality can check.
bool exact_version(const std::string& v) {
  size_t i = (v.rfind("v", 0) == 0 || v.rfind("=", 0) == 0) ? 1 : 0;
  for (int part = 0; part < 3; ++part) {
    size_t start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
    if (i == start) return false;
    if (part < 2) {
      if (i >= v.size() || v[i] != '.') return false;
      ++i;
    }
  }
  if (i == v.size()) return true;
  if (v[i] != '-' && v[i] != '+') return false;
  for (++i; i < v.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(v[i])) && v[i] != '.' && v[i] != '-' &&
        v[i] != '+')
      return false;
  return true;
}

struct Manifest {
  std::string name, version;
};

// name and version of a tarball (npm pack's package/package.json) or a package directory.
Manifest manifest_of(EffectContext& ctx, const std::string& path) {
  json j;
  std::error_code ec;
  if (stdfs::is_directory(path, ec)) {
    j = read_json(path + "/package.json");
  } else {
    need_program("tar");
    os::ProcessSpec spec;
    // Depth one only: the tarball's own manifest, not one of a bundled dependency.
    spec.argv = {"tar",           "-xzOf", path, "--wildcards", "--no-wildcards-match-slash",
                 "*/package.json"};
    spec.timeout = Millis(60'000);
    auto res = run_process_checked(ctx, spec, false);
    if (res.code != 0)
      throw EffectError("cannot read package.json from " + path + ": " +
                        tail_lines(res.stderr_text));
    std::string why;
    j = parse_json(res.stdout_text, &why);
    if (j.is_discarded())
      throw EffectError("package.json in " + path + " is not valid JSON: " + why);
  }
  Manifest m;
  if (j.contains("name") && j["name"].is_string()) m.name = j["name"].get<std::string>();
  if (j.contains("version") && j["version"].is_string())
    m.version = j["version"].get<std::string>();
  if (m.name.empty() || m.version.empty())
    throw EffectError(path + " has no name or version in its package.json");
  return m;
}

struct Wanted {
  std::string name;
  std::string spec;      // argument to npm install: name@1.2.3, name@file:/abs/x.tgz
  std::string expected;  // the version it must be at afterwards
};

// packages = { name = "1.2.3" | "file:/path/x-1.2.3.tgz" | "./x-1.2.3.tgz" }.
// In a preview (`preview` true) a missing tarball or one holding another package is where the live
// call would fail (WouldFail).
[[noreturn]] void wanted_fails(EffectContext& ctx, bool preview, const std::string& path,
                               const std::string& msg) {
  if (preview) would_fail(ctx, "npm", path, msg);
  throw EffectError(msg);
}

std::vector<Wanted> wanted_of(EffectContext& ctx, const Args& a, const std::string& dir,
                              bool preview = false) {
  std::vector<Wanted> out;
  for (const auto& [name, value] : a.string_map("packages")) {
    if (!valid_name(name)) bad_arg(a, "packages", "not a package name: \"" + name + "\"");
    std::string v = trim(value);
    if (exact_version(v)) {
      std::string ver = (v.front() == 'v' || v.front() == '=') ? v.substr(1) : v;
      out.push_back({name, name + "@" + ver, ver});
      continue;
    }
    std::string path;
    if (v.rfind("file:", 0) == 0) {
      path = v.substr(5);
      if (path.rfind("//", 0) == 0) path = path.substr(2);  // file:///abs
    } else if (!v.empty() && (v.front() == '/' || v.rfind("./", 0) == 0 || v.rfind("../", 0) == 0 ||
                              (v.size() > 4 && v.compare(v.size() - 4, 4, ".tgz") == 0) ||
                              (v.size() > 7 && v.compare(v.size() - 7, 7, ".tar.gz") == 0))) {
      path = v;
    } else {
      bad_arg(a, "packages",
              "an exact version like \"1.2.3\" or a tarball (\"file:/path/x-1.2.3.tgz\") expected "
              "for '" +
                  name + "', got \"" + value + "\"");
    }
    if (path.empty() || path.front() != '/')
      path = dir + "/" + path;  // npm reads file: specs from the project
    path = abs_path(path);
    if (!exists(path))
      wanted_fails(ctx, preview, path, "the tarball for " + name + " does not exist: " + path);
    Manifest m = manifest_of(ctx, path);
    if (m.name != name) wanted_fails(ctx, preview, path, path + " holds " + m.name + ", not " + name);
    out.push_back({name, name + "@file:" + path, m.version});
  }
  if (out.empty()) bad_arg(a, "packages", "no packages given");
  return out;
}

std::vector<VersionChange> changes_of(const std::map<std::string, std::string>& inst,
                                      const std::vector<Wanted>& wanted) {
  std::vector<VersionChange> out;
  for (const auto& w : wanted) {
    auto it = inst.find(w.name);
    out.push_back({w.name, it == inst.end() ? "" : it->second, w.expected});
  }
  return out;
}

std::vector<ArgSpec> npm_args() {
  return {
      opt("registry", ArgType::String,
          "registry URL (npm_config_registry); may hold a token, kept out of argv and logs"),
      secret(opt("token", ArgType::String,
                 "an auth token for the registry: written to a private 0600 npmrc "
                 "(NPM_CONFIG_USERCONFIG) for the one npm run, never on argv or in logs")),
      opt("offline", ArgType::Bool, "true: only npm's cache, never the network", false),
      opt("prefer_offline", ArgType::Bool, "use cached packages without asking the registry", true),
      opt("timeout", ArgType::Duration, "for the npm run", "10m")};
}

std::vector<std::string> npm_secrets(const Args& a) {
  auto out = a.has("registry") ? url_secrets({a.str("registry")}) : std::vector<std::string>{};
  if (a.has("token")) out.push_back(a.str("token"));
  return out;
}

// npm's "nerf dart" of a registry URL, the key its token goes under: "//host:port/path/".
std::string nerf_dart(const std::string& url) {
  std::string u = url;
  auto scheme = u.find("://");
  if (scheme != std::string::npos) u = u.substr(scheme + 3);
  auto slash = u.find('/');
  auto at = u.find('@');
  if (at != std::string::npos && (slash == std::string::npos || at < slash)) u = u.substr(at + 1);
  auto cut = u.find_first_of("?#");
  if (cut != std::string::npos) u = u.substr(0, cut);
  if (u.empty() || u.back() != '/') u += '/';
  return "//" + u;
}

// The token goes into a private npmrc for this run: the user's own config (if any) first, so
// that its settings still hold, then the token line for the registry.
void npm_token_config(os::ProcessSpec& spec, const Args& a, std::unique_ptr<os::PrivateFile>& rc) {
  if (!a.has("token")) return;
  std::string token = a.str("token");
  if (token.find_first_of("\r\n") != std::string::npos || token.empty())
    throw ArgError("bad argument 'token' to '" + a.effect() + "' (empty, or holds a line break)");
  std::string text;
  const char* user = std::getenv("NPM_CONFIG_USERCONFIG");
  if (!user || !*user) user = std::getenv("npm_config_userconfig");
  std::string own = user && *user ? user : "";
  if (own.empty()) {
    const char* home = std::getenv("HOME");
    if (home && *home) own = std::string(home) + "/.npmrc";
  }
  std::error_code ec;
  if (!own.empty() && stdfs::is_regular_file(own, ec) && stdfs::file_size(own, ec) < (1 << 20)) {
    try {
      text = os::read_file(own);
      if (!text.empty() && text.back() != '\n') text += '\n';
    } catch (const std::exception&) {
    }
  }
  std::string registry = a.has("registry") ? a.str("registry") : "https://registry.npmjs.org/";
  text += nerf_dart(registry) + ":_authToken=" + token + "\n";
  try {
    rc = std::make_unique<os::PrivateFile>("runbook-npmrc-", text);
  } catch (const std::exception& e) {
    throw EffectError(std::string("cannot write the private npmrc for the token: ") + e.what());
  }
  spec.env["NPM_CONFIG_USERCONFIG"] = rc->path();
  spec.unset_env.push_back("npm_config_userconfig");
}

os::ProcessSpec npm_spec(const std::string& dir, const Args& a,
                         const std::vector<std::string>& tail,
                         std::unique_ptr<os::PrivateFile>& rc) {
  os::ProcessSpec spec;
  spec.argv = {"npm"};
  spec.argv.insert(spec.argv.end(), tail.begin(), tail.end());
  spec.cwd = dir;
  spec.env = {{"npm_config_audit", "false"},
              {"npm_config_fund", "false"},
              {"npm_config_update_notifier", "false"},
              {"npm_config_progress", "false"},
              {"NO_UPDATE_NOTIFIER", "1"}};
  if (a.has("offline") && a.boolean("offline"))
    spec.env["npm_config_offline"] = "true";
  else if (a.has("prefer_offline") && a.boolean("prefer_offline"))
    spec.env["npm_config_prefer_offline"] = "true";
  if (a.has("registry")) spec.env["npm_config_registry"] = a.str("registry");
  npm_token_config(spec, a, rc);
  spec.timeout = a.duration_or("timeout", Millis(10 * 60'000));
  return spec;
}

// package.json and the lockfile, copied into the run's artifacts before npm rewrites them.
std::string back_up_manifests(EffectContext& ctx, const std::string& dir) {
  std::string dest = artifact_path(ctx, "npm", dir, "");
  std::error_code ec;
  stdfs::create_directories(dest, ec);
  if (ec) throw EffectError("cannot create " + dest + ": " + ec.message());
  for (const char* f : {"package.json", "package-lock.json", "npm-shrinkwrap.json"}) {
    std::string from = dir + "/" + f;
    if (!exists(from)) continue;
    try {
      os::copy_path(from, dest + "/" + f);
    } catch (const std::exception& e) {
      throw EffectError(e.what());
    }
  }
  ctx.note("package.json and the lockfile are backed up in " + dest);
  return dest;
}

std::string lockfile_of(const std::string& dir) {
  for (const char* f : {"npm-shrinkwrap.json", "package-lock.json"})
    if (exists(dir + "/" + f)) return dir + "/" + f;
  return "";
}

struct LockEntry {
  std::string path;  // node_modules/a/node_modules/b
  std::string version;
  bool dev = false, optional = false, link = false;
};

struct Lock {
  std::string path;
  int version = 0;
  std::vector<LockEntry> entries;
};

Lock read_lock(const std::string& lockfile) {
  Lock l;
  l.path = lockfile;
  json j = read_json(lockfile);
  l.version = j.value("lockfileVersion", 1);
  if (j.contains("packages") && j["packages"].is_object()) {
    for (auto it = j["packages"].begin(); it != j["packages"].end(); ++it) {
      if (it.key().rfind("node_modules/", 0) != 0 || !it->is_object())
        continue;  // "" and workspaces
      LockEntry e;
      e.path = it.key();
      e.version = it->value("version", "");
      e.dev = it->value("dev", false);
      e.optional = it->value("optional", false) || it->value("devOptional", false);
      e.link = it->value("link", false);
      l.entries.push_back(e);
    }
  } else if (j.contains("dependencies") && j["dependencies"].is_object()) {
    // lockfileVersion 1: nested "dependencies"; each level is a node_modules below its parent.
    std::function<void(const json&, const std::string&)> walk = [&](const json& deps,
                                                                    const std::string& base) {
      for (auto it = deps.begin(); it != deps.end(); ++it) {
        if (!it->is_object()) continue;
        LockEntry e;
        e.path = base + "node_modules/" + it.key();
        e.version = it->value("version", "");
        e.dev = it->value("dev", false);
        e.optional = it->value("optional", false);
        if (e.version.rfind("file:", 0) == 0) e.version.clear();
        l.entries.push_back(e);
        if (it->contains("dependencies") && (*it)["dependencies"].is_object())
          walk((*it)["dependencies"], e.path + "/");
      }
    };
    walk(j["dependencies"], "");
  }
  return l;
}

// Lockfile entries not installed at their locked version, as sentences.
std::vector<std::string> lock_mismatches(const std::string& dir, const Lock& lock,
                                         bool production) {
  std::vector<std::string> out;
  for (const auto& e : lock.entries) {
    if (production && e.dev) continue;
    std::string where = dir + "/" + e.path;
    std::string name = e.path.substr(e.path.rfind("node_modules/") + 13);
    if (!exists(where)) {
      if (!e.optional) out.push_back(name + " is missing (" + e.path + ")");
      continue;
    }
    if (e.link || e.version.empty()) continue;
    std::string got = version_in(where);
    if (!same_version(got, e.version))
      out.push_back(name + " is " + (got.empty() ? "unreadable" : got) + ", the lockfile says " +
                    e.version);
  }
  return out;
}

std::string first_few(const std::vector<std::string>& v, size_t n = 5) {
  std::vector<std::string> keep(v.begin(), v.begin() + static_cast<long>(std::min(n, v.size())));
  return join(keep, "; ") + (v.size() > n ? "; and " + std::to_string(v.size() - n) + " more" : "");
}

size_t counted(const Lock& lock, bool production) {
  size_t n = 0;
  for (const auto& e : lock.entries) n += !(production && e.dev);
  return n;
}

// --- dry-run predictions (layout in pkg_util.h; subjects are project directories) ---
// An npm entry also keeps "pinned" ({ name = version } that planned pins wrote into package.json
// and the lockfile) and "lock_changed" (a planned change rewrites the lockfile).

const char* const kMod = "npm";
const char* const kUnknownVersion = "unknown";

struct View {
  std::map<std::string, std::string> inst;  // top of node_modules (kUnknownVersion: unknown)
  std::map<std::string, json> why;           // name -> the unknown of its version
  json others = "live";                      // "live", or unknown: packages no change names
  std::string by;
  json pinned = json::object();
  bool predicted = false, lock_changed = false;
};

View view_of(EffectContext& ctx, const std::string& dir) {
  View v;
  v.inst = node_modules(dir);
  if (const json* p = prediction_of(ctx, kMod, dir)) {
    v.predicted = true;
    v.by = p->value("by", "");
    v.lock_changed = p->value("lock_changed", false);
    if (p->contains("pinned") && (*p)["pinned"].is_object()) v.pinned = (*p)["pinned"];
    // Read with defaults: a missing field must not reach nlohmann's const operator[] (UB).
    static const json kLive = "live", kNone = json::object();
    const json& others = p->contains("others") ? p->at("others") : kLive;
    const json& changes =
        p->contains("changes") && p->at("changes").is_object() ? p->at("changes") : kNone;
    if (others.is_string() && others.get<std::string>() == "absent") v.inst.clear();
    if (is_unknown(others)) {
      v.others = others;
      for (auto& [n, ver] : v.inst)
        if (!changes.contains(n)) {
          ver = kUnknownVersion;
          v.why[n] = others;
        }
    }
    for (auto it = changes.begin(); it != changes.end(); ++it) {
      const json& ver = *it;
      if (ver.is_null()) {
        v.inst.erase(it.key());
        v.why.erase(it.key());
      } else if (ver.is_string()) {
        v.inst[it.key()] = ver.get<std::string>();
        v.why.erase(it.key());
      } else {
        v.inst[it.key()] = kUnknownVersion;
        v.why[it.key()] = is_unknown(ver) ? ver : unknown_value("npm.versions after " + v.by);
      }
    }
  }
  if (std::string taint = taint_of(ctx, kMod); !taint.empty()) {
    v.predicted = true;
    v.by = taint;
    v.others = unknown_value("npm.versions after " + taint);
    for (auto& [n, ver] : v.inst) {
      ver = kUnknownVersion;
      v.why[n] = v.others;
    }
  }
  return v;
}

json version_in(const View& v, const std::string& name) {
  auto it = v.inst.find(name);
  if (it != v.inst.end()) {
    if (it->second != kUnknownVersion) return it->second;
    auto w = v.why.find(name);
    return w != v.why.end() ? w->second : unknown_value("npm.versions after " + v.by);
  }
  if (is_unknown(v.others)) return v.others;
  return nullptr;
}

json with_unknowns(json changed, const View& v) {
  if (!changed.is_object()) return changed;
  for (auto it = changed.begin(); it != changed.end(); ++it)
    if (it->is_object() && (*it)["from"].is_string() &&
        (*it)["from"].get<std::string>() == kUnknownVersion)
      (*it)["from"] = version_in(v, it.key());
  return changed;
}

json basis_versions(const View& v, const std::set<std::string>& names) {
  json out = json::object();
  for (const auto& n : names) out[n] = version_in(v, n);  // std::set: sorted, deterministic
  return out;
}

// Previews: the project as the live call requires it (package.json readable), npm on PATH.
json project_or_fail(EffectContext& ctx, const std::string& dir) {
  if (!exists(dir)) would_fail(ctx, kMod, dir, "no such directory: " + dir);
  if (!exists(dir + "/package.json")) would_fail(ctx, kMod, dir, "no package.json in " + dir);
  try {
    return read_json(dir + "/package.json");
  } catch (const EffectError& e) {
    would_fail(ctx, kMod, dir + "/package.json", e.what());
  }
}

void npm_or_fail() {
  try {
    need_program("npm");
  } catch (const EffectError& e) {
    throw WouldFail(e.what());
  }
}

// The lockfile's sha256 for a basis: unknown when a planned change rewrites it first.
json lock_basis(const View& v, const std::string& dir) {
  if (v.lock_changed) return unknown_value("the lockfile after " + v.by);
  std::string lf = lockfile_of(dir);
  return lf.empty() ? json(nullptr) : sha256_or_null(lf);
}

// { name = spec } of a dependency section, in name order (npm may write either order).
std::map<std::string, std::string> spec_map(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  if (!j.contains(key) || !j[key].is_object()) return out;
  for (auto it = j[key].begin(); it != j[key].end(); ++it)
    out[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
  return out;
}

// node_modules as a lockfile lays it out (its top level), with what planned pins wrote into it.
void predict_from_lock(json& entry, const Lock& lock, bool production, const View& v) {
  json changes = json::object();
  for (const auto& e : lock.entries) {
    std::string name = e.path.substr(13);  // after "node_modules/"
    if (name.find("/node_modules/") != std::string::npos || (production && e.dev)) continue;
    if (e.link || e.version.empty())
      changes[name] = unknown_value("the version of " + name + " (a link in the lockfile)");
    else
      changes[name] = e.version;
  }
  if (v.lock_changed)
    for (auto it = v.pinned.begin(); it != v.pinned.end(); ++it) changes[it.key()] = *it;
  entry["changes"] = changes;
  entry["others"] = "absent";
}

// --- the effects ---

void add_versions(Registry& r) {
  Effect e;
  e.name = "npm.versions";
  e.summary =
      "Installed Node packages of a project (the top level of node_modules) and their versions";
  e.args = {req("dir", ArgType::Path, "the project directory (holding node_modules)")};
  e.positional = {"dir"};
  e.returns =
      "{ name = version }: { [\"@scope/name\"] = \"1.2.3\", ... }; empty without node_modules";
  e.results = {{"*", "map", "package name → version"}};
  e.describe = [](const Args& a) { return "read package versions in " + a.str("dir"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    std::string dir = dir_of(a);
    if (!exists(dir)) throw EffectError("no such directory: " + dir);
    json out = json::object();
    for (const auto& [n, v] : node_modules(dir)) out[n] = v;
    return out;
  };
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    View v = view_of(ctx, dir);
    if (!v.predicted) return nullptr;
    if (!exists(dir)) throw EffectError("no such directory: " + dir);
    if (is_unknown(v.others)) return v.others;
    json out = json::object();
    for (const auto& [n, ver] : v.inst) out[n] = version_in(v, n);
    return out;
  };
  e.planned = [](const Args&, const json&) { return json::object(); };
  r.add(std::move(e));
}

void add_pin(Registry& r) {
  Effect e;
  e.name = "npm.pin";
  e.summary =
      "npm install --save-exact of exact versions or tarballs (package.json and the lockfile "
      "are backed up first), then verify each is installed at its version";
  e.kind = Kind::Change;
  e.args = {req("dir", ArgType::Path, "the project directory"),
            req("packages", ArgType::Map,
                "{ name = \"1.2.3\" } or a tarball: { name = \"file:/path/name-1.2.3.tgz\" }")};
  for (auto& s : npm_args()) e.args.push_back(s);
  e.returns =
      "{ changed = { name = { from =, to = } }, unchanged = { name = version }, backup = directory "
      "with package.json and package-lock.json as they were }";
  e.results = {{"changed", "map", "name → { from, to }"}, {"unchanged", "map", "name → version"}, {"backup", "string", "directory with package.json and package-lock.json as they were"}};
  e.secrets_of = npm_secrets;
  e.describe = [](const Args& a) {
    std::string s;
    for (const auto& [n, v] : a.string_map("packages")) s += (s.empty() ? "" : " ") + n + "@" + v;
    return "pin " + s + " in " + a.str("dir");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    project_or_fail(ctx, dir);
    npm_or_fail();
    View v = view_of(ctx, dir);
    auto changes = changes_of(v.inst, wanted_of(ctx, a, dir, true));
    json pv = change_preview(changes);
    pv["changed"] = with_unknowns(pv["changed"], v);
    std::set<std::string> names;
    for (const auto& c : changes) names.insert(c.name);
    pv["basis"] = json{{"versions", basis_versions(v, names)}};
    return pv;
  };
  // A pin that succeeds leaves each package at its version (it verifies them) and writes them
  // into package.json and the lockfile; what npm moves besides is not predicted.
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string dir = dir_of(a);
    json& entry = prediction_for(ctx, kMod, dir);
    entry["by"] = "npm.pin in " + dir;
    entry["lock_changed"] = true;
    if (!entry["pinned"].is_object()) entry["pinned"] = json::object();
    for (const auto& [name, _] : a.string_map("packages")) {
      json to = unknown_value("the version npm.pin installs for " + name + " (not previewed)");
      if (pv.is_object() && pv["changed"].is_object() && pv["changed"].contains(name))
        to = pv["changed"][name].value("to", to);
      else if (pv.is_object() && pv["unchanged"].is_object() && pv["unchanged"].contains(name))
        to = pv["unchanged"][name];
      entry["changes"][name] = to;
      entry["pinned"][name] = to;
    }
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    require_project(dir);
    need_program("npm");
    auto wanted = wanted_of(ctx, a, dir);
    auto changes = changes_of(node_modules(dir), wanted);
    std::string backup = back_up_manifests(ctx, dir);
    std::vector<std::string> tail = {"install", "--save-exact", "--no-audit", "--no-fund"};
    for (const auto& w : wanted) tail.push_back(w.spec);
    std::unique_ptr<os::PrivateFile> rc;
    run_process_checked(ctx, npm_spec(dir, a, tail, rc), true, "npm install");
    auto after = node_modules(dir);
    std::vector<VersionChange> done;
    std::vector<std::string> bad;
    for (const auto& c : changes) {
      auto it = after.find(c.name);
      std::string got = it == after.end() ? "" : it->second;
      done.push_back({c.name, c.from, got});
      if (got.empty())
        bad.push_back(c.name + " is not installed after npm install, expected " + c.to);
      else if (!same_version(got, c.to))
        bad.push_back(c.name + " is " + got + " after npm install, expected " + c.to);
    }
    json result{
        {"changed", changed_json(done)}, {"unchanged", unchanged_json(done)}, {"backup", backup}};
    if (!bad.empty()) throw EffectError(join(bad, "; "), result);
    return result;
  };
  e.planned = [](const Args&, const json& pv) {
    return json{{"changed", pv_or(pv, "changed", json::object())},
                {"unchanged", pv_or(pv, "unchanged", json::object())},
        {"backup", ""}};
  };
  e.verify = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    if (!exists(dir)) return false;
    auto inst = node_modules(dir);
    for (const auto& w : wanted_of(ctx, a, dir)) {
      auto it = inst.find(w.name);
      if (it == inst.end() || !same_version(it->second, w.expected)) return false;
    }
    return true;
  };
  r.add(std::move(e));
}

// npm ci and npm install take the same arguments and share the check afterwards: every lockfile
// entry is on disk at its version.
std::vector<ArgSpec> project_args() {
  std::vector<ArgSpec> out = {
      req("dir", ArgType::Path, "the project directory"),
      opt("production", ArgType::Bool, "true: leave out devDependencies (--omit=dev)", false)};
  for (auto& s : npm_args()) out.push_back(s);
  return out;
}

// The lockfile npm ci installs from, in a project that must exist.
std::string ci_lockfile(const std::string& dir) {
  require_project(dir);
  std::string lf = lockfile_of(dir);
  if (lf.empty()) throw EffectError("no package-lock.json in " + dir + " (npm ci needs one)");
  return lf;
}

void add_ci(Registry& r) {
  Effect e;
  e.name = "npm.ci";
  e.summary =
      "npm ci: a clean node_modules exactly as package-lock.json says, verified entry by entry "
      "afterwards";
  e.kind = Kind::Change;
  e.args = project_args();
  e.positional = {"dir"};
  e.returns = "{ installed = packages verified against the lockfile, lockfile = its path }";
  e.results = {{"installed", "integer", "packages verified against the lockfile"}, {"lockfile", "string", "its path"}};
  e.secrets_of = npm_secrets;
  e.describe = [](const Args& a) {
    return "npm ci in " + a.str("dir") + (a.boolean("production") ? " (production)" : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    project_or_fail(ctx, dir);
    View v = view_of(ctx, dir);
    if (lockfile_of(dir).empty()) {
      std::string msg = "no package-lock.json in " + dir + " (npm ci needs one)";
      if (v.lock_changed) throw EffectError(msg + " now; " + v.by + " writes one");
      would_fail(ctx, kMod, dir, msg);
    }
    npm_or_fail();
    std::string lf = ci_lockfile(dir);
    Lock lock = read_lock(lf);
    size_t n = counted(lock, a.boolean("production"));
    size_t now = node_modules(dir).size();
    std::string s = "installs " + std::to_string(n) + " packages from " +
                    stdfs::path(lf).filename().string() + " (lockfileVersion " +
                    std::to_string(lock.version) + ")";
    s += now ? ", replacing node_modules (" + std::to_string(now) + " packages now)"
             : " into a new node_modules";
    return json{{"text", s},
                {"packages", n},
                {"basis", json{{"lockfile_sha256", lock_basis(v, dir)}}}};
  };
  // node_modules afterwards is the lockfile's top level, nothing else.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string dir = dir_of(a);
    View v = view_of(ctx, dir);
    json& entry = prediction_for(ctx, kMod, dir);
    entry["by"] = "npm.ci in " + dir;
    try {
      std::string lf = lockfile_of(dir);
      if (lf.empty()) throw EffectError("no lockfile yet");
      predict_from_lock(entry, read_lock(lf), a.boolean("production"), v);
    } catch (const std::exception& e) {
      entry["changes"] = json::object();
      entry["others"] = unknown_value("npm.versions after npm.ci in " + dir + " (" + e.what() + ")");
    }
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    std::string lf = ci_lockfile(dir);
    need_program("npm");
    std::vector<std::string> tail = {"ci", "--no-audit", "--no-fund"};
    if (a.boolean("production")) tail.push_back("--omit=dev");
    std::unique_ptr<os::PrivateFile> rc;
    run_process_checked(ctx, npm_spec(dir, a, tail, rc), true, "npm ci");
    Lock lock = read_lock(lf);
    json result{{"installed", counted(lock, a.boolean("production"))}, {"lockfile", lf}};
    auto bad = lock_mismatches(dir, lock, a.boolean("production"));
    if (!bad.empty())
      throw EffectError("node_modules does not match the lockfile: " + first_few(bad), result);
    return result;
  };
  e.planned = [](const Args& a, const json& pv) {
    return json{{"installed", pv_or(pv, "packages", 0)},
                {"lockfile", dir_of(a) + "/package-lock.json"}};
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    std::string dir = dir_of(a);
    std::string lf = lockfile_of(dir);
    if (lf.empty()) return nullptr;
    return lock_mismatches(dir, read_lock(lf), a.boolean("production")).empty();
  };
  r.add(std::move(e));
}

void add_install(Registry& r) {
  Effect e;
  e.name = "npm.install";
  e.summary =
      "npm install: the dependencies package.json declares (package.json and the lockfile are "
      "backed up first), verified against the lockfile afterwards";
  e.kind = Kind::Change;
  e.args = project_args();
  e.positional = {"dir"};
  e.returns =
      "{ changed = { name = { from =, to = } } at the top of node_modules, installed = count, "
      "backup = directory }";
  e.results = {{"changed", "map", "name → { from, to } at the top of node_modules"}, {"installed", "integer", "count"}, {"backup", "string", "directory"}};
  e.secrets_of = npm_secrets;
  e.describe = [](const Args& a) { return "npm install in " + a.str("dir"); };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    json pj = project_or_fail(ctx, dir);
    npm_or_fail();
    View v = view_of(ctx, dir);
    size_t declared = 0;
    std::set<std::string> names;
    for (const char* k : {"dependencies", "devDependencies", "optionalDependencies"})
      if (pj.contains(k) && pj[k].is_object() &&
          !(a.boolean("production") && std::string(k) == "devDependencies")) {
        declared += pj[k].size();
        for (auto it = pj[k].begin(); it != pj[k].end(); ++it) names.insert(it.key());
      }
    std::string lf = lockfile_of(dir);
    std::string text =
        "installs the " + std::to_string(declared) + " dependencies package.json declares" +
        (lf.empty() ? " (no lockfile yet: npm resolves versions)"
                    : " as " + stdfs::path(lf).filename().string() + " locks them (" +
                          std::to_string(read_lock(lf).entries.size()) + " packages)") +
        "; " + std::to_string(node_modules(dir).size()) + " installed now";
    json manifest = v.lock_changed ? unknown_value("package.json after " + v.by)
                                   : sha256_or_null(dir + "/package.json");
    return json{{"text", text},
                {"basis", json{{"versions", basis_versions(v, names)},
                               {"package_json_sha256", manifest},
                               {"lockfile_sha256", lock_basis(v, dir)}}}};
  };
  // With a lockfile that locks what package.json declares (or that a planned pin wrote),
  // node_modules afterwards is its top level; otherwise npm resolves: the versions are unknown.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string dir = dir_of(a);
    View v = view_of(ctx, dir);
    json& entry = prediction_for(ctx, kMod, dir);
    std::string by = "npm.install in " + dir;
    entry["by"] = by;
    try {
      std::string lf = lockfile_of(dir);
      if (lf.empty()) throw EffectError("no lockfile: npm resolves versions");
      bool matches = v.lock_changed;
      if (!matches) {
        json pj = read_json(dir + "/package.json");
        json lj = read_json(lf);
        const json* root = nullptr;
        if (lj.contains("packages") && lj["packages"].is_object() && lj["packages"].contains(""))
          root = &lj["packages"][""];
        matches = root && root->is_object();
        for (const char* k : {"dependencies", "devDependencies", "optionalDependencies"}) {
          if (!matches) break;
          matches = spec_map(pj, k) == spec_map(*root, k);
        }
      }
      if (!matches) throw EffectError("the lockfile does not lock what package.json declares");
      predict_from_lock(entry, read_lock(lf), a.boolean("production"), v);
    } catch (const std::exception& e) {
      entry["changes"] = json::object();
      entry["others"] = unknown_value("npm.versions after " + by + " (" + e.what() + ")");
    }
    entry["lock_changed"] = true;
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    require_project(dir);
    need_program("npm");
    auto before = node_modules(dir);
    std::string backup = back_up_manifests(ctx, dir);
    std::vector<std::string> tail = {"install", "--no-audit", "--no-fund"};
    if (a.boolean("production")) tail.push_back("--omit=dev");
    std::unique_ptr<os::PrivateFile> rc;
    run_process_checked(ctx, npm_spec(dir, a, tail, rc), true, "npm install");
    auto after = node_modules(dir);
    json changed = json::object();
    for (const auto& [n, v] : after) {
      auto it = before.find(n);
      if (it == before.end())
        changed[n] = json{{"from", nullptr}, {"to", v}};
      else if (it->second != v)
        changed[n] = json{{"from", it->second}, {"to", v}};
    }
    for (const auto& [n, v] : before)
      if (!after.count(n)) changed[n] = json{{"from", v}, {"to", nullptr}};
    std::string lf = lockfile_of(dir);
    Lock lock = lf.empty() ? Lock{} : read_lock(lf);
    json result{{"changed", changed},
                {"installed", counted(lock, a.boolean("production"))},
                {"backup", backup}};
    auto bad = lf.empty() ? std::vector<std::string>{}
                          : lock_mismatches(dir, lock, a.boolean("production"));
    if (!bad.empty())
      throw EffectError("node_modules does not match the lockfile: " + first_few(bad), result);
    return result;
  };
  e.planned = [](const Args&, const json&) {
    return json{{"changed", json::object()}, {"installed", 0}, {"backup", ""}};
  };
  r.add(std::move(e));
}

std::string script_of(const json& pj, const std::string& dir, const std::string& script) {
  if (pj.contains("scripts") && pj["scripts"].is_object() && pj["scripts"].contains(script) &&
      pj["scripts"][script].is_string())
    return pj["scripts"][script].get<std::string>();
  std::vector<std::string> names;
  if (pj.contains("scripts") && pj["scripts"].is_object())
    for (auto it = pj["scripts"].begin(); it != pj["scripts"].end(); ++it)
      names.push_back(it.key());
  throw EffectError(
      "no script '" + script + "' in " + dir + "/package.json (" +
      (names.empty() ? std::string("it has no scripts") : "scripts: " + join(names, ", ")) + ")");
}

void add_run(Registry& r) {
  Effect e;
  e.name = "npm.run";
  e.summary = "npm run <script> in a project, with a timeout and its output captured";
  e.kind = Kind::Change;
  e.checkable = true;
  e.args = {req("dir", ArgType::Path, "the project directory"),
            req("script", ArgType::String, "a script of package.json: \"build\""),
            opt("args", ArgType::List, "arguments passed to the script (after --)"),
            opt("env", ArgType::Map, "environment variables added for the script"),
            opt("timeout", ArgType::Duration, "the script's group gets TERM after this, then KILL",
                "10m"),
            opt("readonly", ArgType::Bool,
                "true: the script only reads (a smoke test), so it is a probe and runs in dry-run",
                false)};
  e.returns = "{ code, stdout, stderr, duration (ms), timed_out }";
  e.results = {{"code", "integer", "exit status"}, {"stdout", "string", "standard output"}, {"stderr", "string", "standard error"}, {"duration", "integer", "milliseconds"}, {"timed_out", "boolean", "whether the timeout killed it"}};
  e.kind_for = [](const Args& a) { return a.boolean("readonly") ? Kind::Probe : Kind::Change; };
  e.describe = [](const Args& a) {
    std::string s = "npm run " + a.str("script");
    if (a.has("args")) s += " -- " + display_argv(a.strings("args"));
    return s + "  (in " + a.str("dir") + ")";
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    std::string dir = dir_of(a);
    std::string cmd = script_of(require_project(dir), dir, a.str("script"));
    return "npm run " + a.str("script") + ": " + cmd;
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string dir = dir_of(a);
    script_of(require_project(dir), dir, a.str("script"));
    need_program("npm");
    // --silent: the script's own output, without npm's "> name@1.0 build" banner.
    std::vector<std::string> tail = {"run", "--silent", a.str("script")};
    if (a.has("args")) {
      tail.push_back("--");
      for (const auto& x : a.strings("args")) tail.push_back(x);
    }
    std::unique_ptr<os::PrivateFile> rc;
    auto spec = npm_spec(dir, a, tail, rc);
    for (const auto& [k, v] : a.string_map("env")) spec.env[k] = v;
    auto res = run_process_checked(ctx, spec, true, "npm run " + a.str("script"));
    return process_json(res);
  };
  e.planned = [](const Args&, const json&) {
    return json{{"code", 0}, {"stdout", ""}, {"stderr", ""}, {"duration", 0}, {"timed_out", false}};
  };
  r.add(std::move(e));
}

}  // namespace

void register_npm(Registry& r) {
  add_versions(r);
  add_pin(r);
  add_ci(r);
  add_install(r);
  add_run(r);
}

}  // namespace rb::pkg
