// pip.*: Python packages in a virtualenv. pip runs as the venv's own interpreter
// (<venv>/bin/python -m pip), so no activation and no PATH lookup decide which pip acts. What is
// installed is read from the venv's *.dist-info metadata directly: it is what pip itself reads,
// and it costs no interpreter start in a preview.
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <cstdlib>
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

const Millis kInstallTimeout{10 * 60'000};

struct Dist {
  std::string name;  // as its metadata spells it ("PyYAML")
  std::string version;
};
using Installed = std::map<std::string, Dist>;  // by normalized name

// PEP 503: "Pydantic_Core", "pydantic.core" and "pydantic-core" are one project.
std::string normalize(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (out.empty() || out.back() != '-') out += '-';
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

std::string python_of(const std::string& venv) { return venv + "/bin/python"; }

std::string venv_of(const Args& a) { return abs_path(a.str("venv")); }

void require_venv(const std::string& venv) {
  if (!exists(python_of(venv)))
    throw EffectError("no virtualenv at " + venv + " (" + python_of(venv) + " is missing)");
}

std::vector<std::string> site_dirs(const std::string& venv) {
  std::vector<std::string> out;
  std::set<std::string> seen;  // lib64 is often a symlink to lib
  for (const char* pat : {"/lib/python*/site-packages", "/lib64/python*/site-packages"}) {
    glob_t g{};
    if (::glob((venv + pat).c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        std::error_code ec;
        std::string canon = stdfs::canonical(g.gl_pathv[i], ec).string();
        if (!ec && seen.insert(canon).second) out.emplace_back(g.gl_pathv[i]);
      }
    globfree(&g);
  }
  return out;
}

// The Name and Version headers of a METADATA / PKG-INFO file.
Dist read_metadata(const std::string& path) {
  Dist d;
  std::string text;
  try {
    text = os::read_file(path);
  } catch (const std::exception&) {
    return d;
  }
  for (const auto& raw : split(text, '\n')) {
    std::string line = raw;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;  // the headers end at the first blank line
    if (line.rfind("Name:", 0) == 0 && d.name.empty()) d.name = trim(line.substr(5));
    if (line.rfind("Version:", 0) == 0 && d.version.empty()) d.version = trim(line.substr(8));
  }
  return d;
}

Installed installed(const std::string& venv) {
  Installed out;
  for (const auto& dir : site_dirs(venv)) {
    std::error_code ec;
    for (auto it = stdfs::directory_iterator(dir, ec); !ec && it != stdfs::directory_iterator();
         it.increment(ec)) {
      std::string fn = it->path().filename().string();
      std::string meta;
      if (fn.size() > 10 && fn.compare(fn.size() - 10, 10, ".dist-info") == 0)
        meta = it->path().string() + "/METADATA";
      else if (fn.size() > 9 && fn.compare(fn.size() - 9, 9, ".egg-info") == 0)
        meta = it->is_directory(ec) ? it->path().string() + "/PKG-INFO" : it->path().string();
      if (meta.empty()) continue;
      Dist d = read_metadata(meta);
      if (!d.name.empty() && !d.version.empty()) out[normalize(d.name)] = d;
    }
  }
  return out;
}

const Dist* find(const Installed& inst, const std::string& name) {
  auto it = inst.find(normalize(name));
  return it == inst.end() ? nullptr : &it->second;
}

// Keys: the normalized name, the metadata's own spelling, and the normalized name with "_" so
// that `v.pydantic_core` works in Lua where `v["pydantic-core"]` is awkward.
json versions_json(const Installed& inst) {
  json out = json::object();
  for (const auto& [norm, d] : inst) {
    out[norm] = d.version;
    out[d.name] = d.version;
    std::string under = norm;
    std::replace(under.begin(), under.end(), '-', '_');
    out[under] = d.version;
  }
  return out;
}

bool valid_name(const std::string& n) {
  if (n.empty() || !std::isalnum(static_cast<unsigned char>(n.front())) ||
      !std::isalnum(static_cast<unsigned char>(n.back())))
    return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

struct Wanted {
  std::string given;  // the caller's spelling, used in texts and result keys
  std::string version;
};

// packages = { name = "1.2.3" }: exact versions only, since pin verifies equality afterwards.
std::vector<Wanted> wanted_of(const Args& a) {
  std::vector<Wanted> out;
  for (const auto& [name, value] : a.string_map("packages")) {
    if (!valid_name(name)) bad_arg(a, "packages", "not a package name: \"" + name + "\"");
    std::string v = trim(value);
    if (v.rfind("==", 0) == 0) v = trim(v.substr(2));
    bool ok = !v.empty() && std::isalnum(static_cast<unsigned char>(v.front()));
    for (char c : v)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '!' || c == '+' ||
                  c == '-' || c == '_');
    if (!ok)
      bad_arg(
          a, "packages",
          "an exact version like \"4.23.0\" expected for '" + name + "', got \"" + value + "\"");
    out.push_back({name, v});
  }
  if (out.empty()) bad_arg(a, "packages", "no packages given");
  return out;
}

std::vector<VersionChange> changes_of(const Installed& inst, const std::vector<Wanted>& wanted) {
  std::vector<VersionChange> out;
  for (const auto& w : wanted) {
    const Dist* d = find(inst, w.given);
    out.push_back({w.given, d ? d->version : "", w.version});
  }
  return out;
}

std::vector<ArgSpec> index_args() {
  return {opt("index_url", ArgType::String,
              "package index (PIP_INDEX_URL); may hold credentials, kept out of argv and logs"),
          opt("extra_index_url", ArgType::String, "an additional index (PIP_EXTRA_INDEX_URL); may hold credentials, kept out of argv and logs"),
          opt("find_links", ArgType::String, "a directory or URL of wheels to install from (PIP_FIND_LINKS); may hold credentials, kept out of argv and logs"),
          opt("no_index", ArgType::Bool, "true: never contact an index (offline, with find_links)",
              false)};
}

std::vector<std::string> index_secrets(const Args& a) {
  std::vector<std::string> urls;
  for (const char* k : {"index_url", "extra_index_url", "find_links"})
    if (a.has(k)) urls.push_back(a.str(k));
  // A direct reference ("app @ https://user:token@host/app.whl") carries one too.
  if (a.has("packages") && a.raw()["packages"].is_array())
    for (const auto& p : a.raw()["packages"])
      if (p.is_string()) urls.push_back(p.get<std::string>());
  return url_secrets(urls);
}

os::ProcessSpec pip_spec(const std::string& venv, const Args& a,
                         const std::vector<std::string>& tail, bool read_only) {
  os::ProcessSpec spec;
  spec.argv = {python_of(venv), "-m", "pip"};
  spec.argv.insert(spec.argv.end(), tail.begin(), tail.end());
  spec.env = {{"PIP_DISABLE_PIP_VERSION_CHECK", "1"}, {"PIP_NO_INPUT", "1"}, {"PIP_NO_COLOR", "1"}};
  // A probe must leave the venv byte-identical: no __pycache__ written by importing pip.
  if (read_only) spec.env["PYTHONDONTWRITEBYTECODE"] = "1";
  spec.unset_env = {"PYTHONHOME", "PYTHONPATH", "PIP_USER", "PIP_TARGET", "PIP_PREFIX"};
  // Index URLs go by environment: they may carry a token, and argv is world-readable in /proc.
  if (a.has("index_url")) spec.env["PIP_INDEX_URL"] = a.str("index_url");
  if (a.has("extra_index_url")) spec.env["PIP_EXTRA_INDEX_URL"] = a.str("extra_index_url");
  if (a.has("find_links")) {
    std::string fl = a.str("find_links");
    spec.env["PIP_FIND_LINKS"] = fl.find("://") == std::string::npos ? abs_path(fl) : fl;
  }
  spec.timeout = a.duration_or("timeout", read_only ? Millis(120'000) : kInstallTimeout);
  return spec;
}

std::vector<std::string> install_flags(const Args& a) {
  std::vector<std::string> out = {"install"};
  if (a.has("no_index") && a.boolean("no_index")) out.push_back("--no-index");
  // find_links goes by environment (PIP_FIND_LINKS, see pip_spec): a URL may hold a password.
  return out;
}

struct Requirements {
  std::vector<std::pair<std::string, std::string>> pinned;  // name, version (name==version lines)
  std::vector<std::string> other;                           // -e, URLs, ranges: kept verbatim
};

Requirements parse_requirements(const std::string& text) {
  Requirements r;
  for (const auto& raw : split(text, '\n')) {
    std::string line = trim(raw);
    auto hash = line.find(" #");
    if (hash != std::string::npos) line = trim(line.substr(0, hash));
    if (line.empty() || line.front() == '#') continue;
    std::string spec = trim(line.substr(0, line.find(';')));
    auto eq = spec.find("==");
    if (line.front() == '-' || eq == std::string::npos || spec.find(" @ ") != std::string::npos) {
      r.other.push_back(line);
      continue;
    }
    std::string name = trim(spec.substr(0, eq));
    name = name.substr(0, name.find('['));  // extras: name[extra]==1.0
    std::string ver = spec.substr(eq + 2);
    while (!ver.empty() && ver.front() == '=') ver.erase(0, 1);  // ===1.0
    ver = trim(ver);
    if (ver.find_first_of(",<>!~* ") != std::string::npos || !valid_name(name)) {
      r.other.push_back(line);
      continue;
    }
    r.pinned.emplace_back(name, ver);
  }
  return r;
}

struct Frozen {
  std::string path;
  json packages;
  size_t count = 0;
};

// `pip freeze` (without pip/setuptools/wheel: what an operator's own `pip freeze > file` holds,
// so a snapshot can be fed back to pip by hand too), written to `path` or the run's artifacts.
Frozen freeze(EffectContext& ctx, const std::string& venv, const Args& a,
              const std::string& to = "") {
  auto res = run_process_checked(ctx, pip_spec(venv, a, {"freeze"}, true), true, "pip freeze");
  Frozen f;
  f.path = to.empty() ? artifact_path(ctx, "pip", venv, "-freeze.txt") : abs_path(to);
  try {
    os::atomic_write(f.path, res.stdout_text);
  } catch (const std::exception& e) {
    throw EffectError(e.what());
  }
  Installed inst = installed(venv), listed;
  Requirements req = parse_requirements(res.stdout_text);
  for (const auto& [name, ver] : req.pinned) listed[normalize(name)] = Dist{name, ver};
  for (const auto& line : req.other) {  // "name @ file:///..." lines: the version from metadata
    auto at = line.find(" @ ");
    if (at == std::string::npos) continue;
    if (const Dist* d = find(inst, trim(line.substr(0, at)))) listed[normalize(d->name)] = *d;
  }
  f.packages = versions_json(listed);
  f.count = listed.size();
  return f;
}

// { name = { from =, to = } } for every package whose version differs between two states.
json diff_json(const Installed& before, const Installed& after,
               const std::set<std::string>& skip = {}) {
  json out = json::object();
  for (const auto& [norm, d] : after) {
    if (skip.count(norm)) continue;
    auto it = before.find(norm);
    if (it == before.end())
      out[d.name] = json{{"from", nullptr}, {"to", d.version}};
    else if (!same_version(it->second.version, d.version))
      out[d.name] = json{{"from", it->second.version}, {"to", d.version}};
  }
  for (const auto& [norm, d] : before)
    if (!after.count(norm) && !skip.count(norm))
      out[d.name] = json{{"from", d.version}, {"to", nullptr}};
  return out;
}

// After an install: the packages not at the asked version, as "x is 1.0 after install,
// expected 2.0".
std::vector<std::string> mismatches(const Installed& inst, const std::vector<Wanted>& wanted,
                                    const std::string& when) {
  std::vector<std::string> out;
  for (const auto& w : wanted) {
    const Dist* d = find(inst, w.given);
    if (!d)
      out.push_back(w.given + " is not installed " + when + ", expected " + w.version);
    else if (!same_version(d->version, w.version))
      out.push_back(w.given + " is " + d->version + " " + when + ", expected " + w.version);
  }
  return out;
}

std::string pyvenv_version(const std::string& venv) {
  std::string text;
  try {
    text = os::read_file(venv + "/pyvenv.cfg");
  } catch (const std::exception&) {
    return "";
  }
  for (const auto& line : split(text, '\n')) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = trim(line.substr(0, eq));
    if (k == "version" || k == "version_info") return trim(line.substr(eq + 1));
  }
  return "";
}

// A dry-run has no snapshot file; this stands in for its path so that a runbook passing it on
// (pip.restore{ snapshot = r.snapshot }) still reads as intended in the plan.
std::string planned_snapshot(const Args& a) {
  return "(dry-run) pip freeze of " + abs_path(a.str("venv"));
}

// --- the restore plan: what a snapshot asks for against what is installed ---

// Never pruned: pip freeze leaves them out of every snapshot, and pip needs them.
const std::set<std::string> kTooling = {"pip", "setuptools", "wheel", "distribute"};

struct RestorePlan {
  std::vector<Wanted> wanted;
  std::vector<VersionChange> changes;  // only those that differ
  std::vector<Dist> extras;            // installed, not in the snapshot
  size_t skipped = 0;                  // snapshot lines not of the form name==version
};

bool is_planned_snapshot(const std::string& snapshot) {
  return snapshot.find("/(dry-run) pip freeze of ") != std::string::npos;
}

RestorePlan plan_from(const Installed& inst, const Requirements& req) {
  RestorePlan p;
  p.skipped = req.other.size();
  std::set<std::string> in_snapshot;
  for (const auto& [name, ver] : req.pinned) {
    p.wanted.push_back({name, ver});
    in_snapshot.insert(normalize(name));
    const Dist* d = find(inst, name);
    if (!d || !same_version(d->version, ver)) p.changes.push_back({name, d ? d->version : "", ver});
  }
  for (const auto& [norm, d] : inst)
    if (!in_snapshot.count(norm) && !kTooling.count(norm)) p.extras.push_back(d);
  return p;
}

RestorePlan restore_plan(const std::string& venv, const std::string& snapshot) {
  if (is_planned_snapshot(snapshot))
    throw EffectError("the snapshot is taken when the run is live");
  if (!exists(snapshot)) throw EffectError("snapshot " + snapshot + " does not exist");
  return plan_from(installed(venv), parse_requirements(read_text(snapshot)));
}

std::string extras_text(const std::vector<Dist>& extras) {
  std::string s;
  for (const auto& d : extras) s += (s.empty() ? "" : ", ") + d.name + " " + d.version;
  return s;
}

std::string restore_text(const RestorePlan& p, bool prune) {
  std::string s = p.changes.empty() ? "already matches the snapshot (" +
                                          std::to_string(p.wanted.size()) + " packages)"
                                    : change_text(p.changes);
  if (!p.extras.empty())
    s += "; " + std::to_string(p.extras.size()) + " not in the snapshot " +
         (prune ? "removed: " : "kept (prune = true removes them): ") + extras_text(p.extras);
  if (p.skipped)
    s += "; " + std::to_string(p.skipped) + " snapshot lines not pinned with == are not restored";
  return s;
}

// The packages a requirement set names, with their exact version ("" when not pinned with ==);
// a line that names none (-r, -e, a URL, a path) gives an empty name.
std::vector<std::pair<std::string, std::string>> requirement_names(const Requirements& r) {
  std::vector<std::pair<std::string, std::string>> out(r.pinned.begin(), r.pinned.end());
  for (const auto& line : r.other) {
    if (line.empty() || line.front() == '-' || line.find("://") != std::string::npos ||
        line.find('/') != std::string::npos) {
      out.emplace_back("", "");
      continue;
    }
    size_t n = 0;
    while (n < line.size() && (std::isalnum(static_cast<unsigned char>(line[n])) ||
                               line[n] == '.' || line[n] == '_' || line[n] == '-'))
      ++n;
    std::string name = line.substr(0, n);
    out.emplace_back(valid_name(name) ? name : "", "");
  }
  return out;
}

// --- dry-run predictions (layout in pkg_util.h; subjects are venv paths) ---

const char* const kMod = "pip";
// Where predictions of snapshot files written by a planned pip.freeze{ to } are kept, beside the
// venvs (a key that is no absolute path).
const char* const kSnapshots = "$snapshots";
// In a preview's Installed, a package whose version a planned change made unknown.
const char* const kUnknownVersion = "unknown";

// The venv as the planned changes leave it: installed now, overlaid with the prediction.
struct View {
  Installed inst;                     // versions known (kUnknownVersion: unknown)
  std::map<std::string, json> why;    // normalized name -> the unknown of its version
  json others = "live";               // "live", or unknown: packages no change names
  std::string by;                     // the change that made it so
  bool predicted = false;             // a planned change (or a taint) touched this venv
  bool created = false;               // a planned pip.venv creates it
};

View view_of(EffectContext& ctx, const std::string& venv) {
  View v;
  v.inst = installed(venv);
  std::string taint = taint_of(ctx, kMod);
  const json* p = prediction_of(ctx, kMod, venv);
  if (p) {
    v.predicted = true;
    v.created = p->value("created", false);
    v.by = p->value("by", "");
    // Read with defaults: a missing field must not reach nlohmann's const operator[] (UB).
    static const json kLive = "live", kNone = json::object();
    const json& others = p->contains("others") ? p->at("others") : kLive;
    if (others.is_string() && others.get<std::string>() == "absent") v.inst.clear();
    const json& changes =
        p->contains("changes") && p->at("changes").is_object() ? p->at("changes") : kNone;
    if (is_unknown(others)) {
      v.others = others;
      for (auto& [norm, d] : v.inst)
        if (!changes.contains(norm)) {
          d.version = kUnknownVersion;
          v.why[norm] = others;
        }
    }
    for (auto it = changes.begin(); it != changes.end(); ++it) {
      if (!it->is_object()) continue;
      const json& c = *it;
      std::string name = c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>()
                                                                    : it.key();
      json ver = c.contains("version") ? c["version"] : json(nullptr);
      if (ver.is_null()) {
        v.inst.erase(it.key());
        v.why.erase(it.key());
      } else if (ver.is_string()) {
        v.inst[it.key()] = Dist{name, ver.get<std::string>()};
        v.why.erase(it.key());
      } else {
        v.inst[it.key()] = Dist{name, kUnknownVersion};
        v.why[it.key()] = is_unknown(ver) ? ver : unknown_value("pip.versions after " + v.by);
      }
    }
  }
  if (!taint.empty()) {
    // Another module's change (an exec, a restored directory) may have changed anything here.
    v.predicted = true;
    v.by = taint;
    v.others = unknown_value("pip.versions after " + taint);
    for (auto& [norm, d] : v.inst) {
      d.version = kUnknownVersion;
      v.why[norm] = v.others;
    }
  }
  return v;
}

// The version of one package in a view: a string, null (absent) or an unknown.
json version_in(const View& v, const std::string& name) {
  std::string norm = normalize(name);
  auto it = v.inst.find(norm);
  if (it != v.inst.end()) {
    if (it->second.version != kUnknownVersion) return it->second.version;
    auto w = v.why.find(norm);
    return w != v.why.end() ? w->second : unknown_value("pip.versions after " + v.by);
  }
  if (is_unknown(v.others)) return v.others;
  return nullptr;
}

// pip.versions' result from a view (whole unknown when the set of packages is not known).
json view_versions_json(const View& v) {
  if (is_unknown(v.others)) return v.others;
  json out = versions_json(v.inst);
  for (const auto& [norm, d] : v.inst)
    if (d.version == kUnknownVersion) {
      json u = version_in(v, norm);
      std::string under = norm;
      std::replace(under.begin(), under.end(), '-', '_');
      out[norm] = u;
      out[d.name] = u;
      out[under] = u;
    }
  return out;
}

// A preview's "changed" with the unknown versions of the view as unknowns, not as text.
json with_unknowns(json changed, const View& v) {
  if (!changed.is_object()) return changed;
  for (auto it = changed.begin(); it != changed.end(); ++it) {
    if (!it->is_object()) continue;
    for (const char* k : {"from", "to"})
      if ((*it)[k].is_string() && (*it)[k].get<std::string>() == kUnknownVersion)
        (*it)[k] = version_in(v, it.key());
  }
  return changed;
}

// A preview's basis: the versions now (as planned changes leave them) of the packages concerned.
json basis_versions(const View& v, const std::vector<std::string>& names) {
  std::map<std::string, json> sorted;  // deterministic order
  for (const auto& n : names) sorted[normalize(n)] = version_in(v, n);
  json out = json::object();
  for (auto& [k, ver] : sorted) out[k] = std::move(ver);
  return out;
}

// Previews: a venv must exist (or be created by a planned pip.venv), as the live call requires.
void need_venv(EffectContext& ctx, const std::string& venv, const View& v) {
  if (v.created || exists(python_of(venv))) return;
  would_fail(ctx, kMod, venv,
             "no virtualenv at " + venv + " (" + python_of(venv) + " is missing)");
}

void set_version(json& entry, const std::string& name, json version) {
  entry["changes"][normalize(name)] = json{{"name", name}, {"version", std::move(version)}};
}

// Everything in the venv unknown from here on (a change that could not be previewed).
void all_unknown(json& entry, const std::string& why) {
  entry["changes"] = json::object();
  entry["others"] = unknown_value(why);
}

// A snapshot's content as planned changes leave it: { name = version } parsed, or why not.
struct SnapshotView {
  Requirements req;
  std::string unknown;  // non-empty: its content cannot be known in the dry-run
};

SnapshotView snapshot_view(EffectContext& ctx, const std::string& snapshot) {
  SnapshotView s;
  const json* planned = prediction_of(ctx, kMod, kSnapshots);
  if (planned && planned->contains(snapshot)) {
    const json& f = (*planned)[snapshot];
    if (is_unknown(f)) {
      s.unknown = unknown_why(f);
    } else {
      for (auto it = f.begin(); it != f.end(); ++it)
        if (it->is_string()) s.req.pinned.emplace_back(it.key(), it->get<std::string>());
    }
    return s;
  }
  if (is_planned_snapshot(snapshot)) {
    s.unknown = "the snapshot is taken when the run is live";
    return s;
  }
  if (!exists(snapshot)) {
    would_fail(ctx, kMod, snapshot, "snapshot " + snapshot + " does not exist");
  }
  s.req = parse_requirements(read_text(snapshot));
  return s;
}

// --- WouldFail: a version the given find-links directory does not have, with no_index ---

// Whether pip's configuration files may add find-links of their own (then no check is made;
// PIP_FIND_LINKS in the environment is read by check_available itself).
bool pip_config_adds_links(const std::string& venv) {
  std::vector<std::string> files = {"/etc/pip.conf", "/etc/xdg/pip/pip.conf", venv + "/pip.conf"};
  if (const char* f = std::getenv("PIP_CONFIG_FILE"); f && *f) files.emplace_back(f);
  if (const char* h = std::getenv("HOME"); h && *h) {
    files.push_back(std::string(h) + "/.config/pip/pip.conf");
    files.push_back(std::string(h) + "/.pip/pip.conf");
  }
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x)
    files.push_back(std::string(x) + "/pip/pip.conf");
  for (const auto& f : files) {
    std::error_code ec;
    if (!stdfs::is_regular_file(f, ec)) continue;
    if (stdfs::file_size(f, ec) > (1u << 20) || ec) return true;
    try {
      std::string text = os::read_file(f);
      if (text.find("find-links") != std::string::npos ||
          text.find("find_links") != std::string::npos)
        return true;
    } catch (const std::exception&) {
      return true;
    }
  }
  return false;
}

// With no_index and local find-links directories only (the find_links argument and those of
// PIP_FIND_LINKS), pip can install only what they hold: a version they lack fails the live call.
// Checked from the file names (wheels: name-version-…whl, sdists: name-version.tar.gz/.zip);
// skipped whenever pip could look elsewhere (a URL, find-links in a pip configuration file).
void check_available(EffectContext& ctx, const Args& a, const std::string& venv,
                     const std::vector<std::pair<std::string, std::string>>& installs) {
  if (installs.empty() || !a.has("no_index") || !a.boolean("no_index") || !a.has("find_links"))
    return;
  std::vector<std::string> links = {a.str("find_links")};
  if (const char* e = std::getenv("PIP_FIND_LINKS"); e && *e)
    for (const auto& l : split(e, ' '))
      if (!trim(l).empty()) links.push_back(trim(l));
  std::vector<std::string> dirs;
  for (auto fl : links) {
    if (fl.rfind("file://", 0) == 0) fl = fl.substr(7);
    if (fl.find("://") != std::string::npos) return;
    dirs.push_back(abs_path(fl));
  }
  if (pip_config_adds_links(venv)) return;
  std::string dir = dirs.front();  // the one the call names
  std::error_code ec;
  if (!stdfs::is_directory(dir, ec))
    would_fail(ctx, kMod, dir,
               "find_links " + dir + " is not a directory, and no_index is set: nothing to "
               "install " + installs.front().first + "==" + installs.front().second + " from");
  std::map<std::string, std::vector<std::string>> have;
  const size_t kMaxFiles = 100'000;
  size_t seen = 0;
  for (const auto& d : dirs) {
    if (d != dir && touched_elsewhere(ctx, kMod, d)) return;
    if (!stdfs::is_directory(d, ec)) continue;  // pip warns and goes on
    for (auto it = stdfs::directory_iterator(d, ec); !ec && it != stdfs::directory_iterator();
         it.increment(ec)) {
      if (++seen > kMaxFiles) return;  // too many to list: leave it to pip
      std::string fn = it->path().filename().string();
      for (const char* ext : {".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"}) {
        std::string x = ext;
        if (fn.size() <= x.size() || fn.compare(fn.size() - x.size(), x.size(), x) != 0) continue;
        std::string stem = fn.substr(0, fn.size() - x.size());
        if (x == ".whl") {
          auto parts = split(stem, '-');
          if (parts.size() >= 2) have[normalize(parts[0])].push_back(parts[1]);
        } else if (auto dash = stem.rfind('-'); dash != std::string::npos && dash > 0) {
          have[normalize(stem.substr(0, dash))].push_back(stem.substr(dash + 1));
        }
        break;
      }
    }
    if (ec) return;  // cannot list it: leave it to pip
  }
  for (const auto& [name, ver] : installs) {
    const auto& vs = have[normalize(name)];
    const std::string& wanted = ver;  // clang 14 cannot capture a structured binding
    bool found = std::any_of(vs.begin(), vs.end(),
                             [&](const std::string& x) { return same_version(x, wanted); });
    if (found) continue;
    std::set<std::string> uniq(vs.begin(), vs.end());
    std::vector<std::string> list(uniq.begin(), uniq.end());
    would_fail(ctx, kMod, dir,
               "no " + name + "==" + ver + " in find_links " + join(dirs, ", ") +
                   (list.empty() ? " (no " + name + " there at all)"
                                 : " (it has " + join(list, ", ") + ")") +
                   ", and no_index is set");
  }
}

// --- the effects ---

void add_versions(Registry& r) {
  Effect e;
  e.name = "pip.versions";
  e.summary = "Installed Python packages of a virtualenv and their versions";
  e.args = {
      req("venv", ArgType::Path, "the virtualenv's directory"),
      opt("packages", ArgType::List, "only these names; the result is keyed by them as given")};
  e.positional = {"venv"};
  e.returns =
      "{ name = version }, keyed by the normalized name (pydantic-core), the package's own "
      "spelling and the underscore form (pydantic_core); with packages, by the names as given "
      "(missing ones absent)";
  e.results = {{"*", "map", "package name → version"}};
  e.describe = [](const Args& a) { return "read package versions in " + a.str("venv"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
    Installed inst = installed(venv);
    if (!a.has("packages")) return versions_json(inst);
    json out = json::object();
    for (const auto& n : a.strings("packages"))
      if (const Dist* d = find(inst, n)) out[n] = d->version;
    return out;
  };
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    if (!v.predicted) return nullptr;
    if (!v.created) require_venv(venv);
    if (!a.has("packages")) return view_versions_json(v);
    json out = json::object();
    for (const auto& n : a.strings("packages")) {
      json ver = version_in(v, n);
      if (!ver.is_null()) out[n] = ver;
    }
    return out;
  };
  e.planned = [](const Args&, const json&) { return json::object(); };
  r.add(std::move(e));
}

void add_pin(Registry& r) {
  Effect e;
  e.name = "pip.pin";
  e.summary =
      "Install exact versions of packages in a virtualenv (a freeze snapshot is kept first), "
      "then verify each is at the asked version";
  e.kind = Kind::Change;
  e.args = {
      req("venv", ArgType::Path, "the virtualenv's directory"),
      req("packages", ArgType::Map, "{ name = \"exact version\" }: { jsonschema = \"4.23.0\" }")};
  for (auto& s : index_args()) e.args.push_back(s);
  e.args.push_back(
      opt("no_deps", ArgType::Bool, "true: install only these, not their dependencies", false));
  e.args.push_back(opt("timeout", ArgType::Duration, "for pip install", "10m"));
  e.returns =
      "{ changed = { name = { from =, to = } }, unchanged = { name = version }, also_changed = "
      "{ dependencies pip moved }, snapshot = freeze file taken before (for pip.restore) }";
  e.results = {{"changed", "map", "name → { from, to }"}, {"unchanged", "map", "name → version"}, {"also_changed", "map", "dependencies pip moved"}, {"snapshot", "string", "freeze file taken before (for pip.restore)"}};
  e.secrets_of = index_secrets;
  e.describe = [](const Args& a) {
    std::string s;
    for (const auto& [n, v] : a.string_map("packages")) s += (s.empty() ? "" : " ") + n + "==" + v;
    return "pin " + s + " in " + a.str("venv");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    auto wanted = wanted_of(a);
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    need_venv(ctx, venv, v);
    auto changes = changes_of(v.inst, wanted);
    std::vector<std::pair<std::string, std::string>> installs;
    std::vector<std::string> names;
    for (const auto& c : changes) {
      names.push_back(c.name);
      if (c.from.empty() || !same_version(c.from, c.to)) installs.emplace_back(c.name, c.to);
    }
    check_available(ctx, a, venv, installs);
    json pv = change_preview(changes);
    pv["changed"] = with_unknowns(pv["changed"], v);
    pv["basis"] = json{{"versions", basis_versions(v, names)}};
    return pv;
  };
  // A pin that succeeds leaves each asked package at its version (it verifies them). The
  // dependencies pip may move are not predicted: they keep their versions of now.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    json& entry = prediction_for(ctx, kMod, venv_of(a));
    for (const auto& w : wanted_of(a)) set_version(entry, w.given, w.version);
    entry["by"] = "pip.pin in " + venv_of(a);
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    auto wanted = wanted_of(a);
    std::string venv = venv_of(a);
    require_venv(venv);
    Installed before = installed(venv);
    auto changes = changes_of(before, wanted);
    Frozen snap = freeze(ctx, venv, a);
    ctx.note("pip freeze snapshot (" + plural(snap.count, "package", "packages") +
             ") saved to " + snap.path);
    std::vector<std::string> specs;
    for (const auto& c : changes)
      if (c.from.empty() || !same_version(c.from, c.to))
        specs.push_back(normalize(c.name) + "==" + c.to);
    if (!specs.empty()) {
      auto tail = install_flags(a);
      if (a.boolean("no_deps")) tail.push_back("--no-deps");
      tail.insert(tail.end(), specs.begin(), specs.end());
      run_process_checked(ctx, pip_spec(venv, a, tail, false), true,
                          "pip install " + join(specs, " "));
    }
    Installed after = installed(venv);
    std::vector<VersionChange> done;
    std::set<std::string> asked;
    for (const auto& c : changes) {
      const Dist* d = find(after, c.name);
      done.push_back({c.name, c.from, d ? d->version : ""});
      asked.insert(normalize(c.name));
    }
    json result{{"changed", changed_json(done)},
                {"unchanged", unchanged_json(done)},
                {"also_changed", diff_json(before, after, asked)},
                {"snapshot", snap.path}};
    auto bad = mismatches(after, wanted, "after install");
    if (!bad.empty()) throw EffectError(join(bad, "; "), result);
    return result;
  };
  e.planned = [](const Args& a, const json& pv) {
    return json{{"changed", pv_or(pv, "changed", json::object())},
                {"unchanged", pv_or(pv, "unchanged", json::object())},
        {"also_changed", json::object()},
        {"snapshot", planned_snapshot(a)}};
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    std::string venv = venv_of(a);
    if (!exists(python_of(venv))) return false;
    return mismatches(installed(venv), wanted_of(a), "now").empty();
  };
  r.add(std::move(e));
}

void add_freeze(Registry& r) {
  Effect e;
  e.name = "pip.freeze";
  e.summary =
      "Save `pip freeze` of a virtualenv as a snapshot file (in the run's artifacts unless `to` is "
      "given)";
  e.args = {req("venv", ArgType::Path, "the virtualenv's directory"),
            opt("to", ArgType::Path, "write the snapshot here instead (then it is a change)"),
            opt("timeout", ArgType::Duration, "for pip freeze", "2m")};
  e.positional = {"venv"};
  e.returns = "{ path = the snapshot file, packages = { name = version }, count }";
  e.results = {{"path", "string", "the snapshot file"}, {"packages", "map", "name → version"}, {"count", "integer", "packages"}};
  // Writing into the run's own artifacts changes nothing of the world; writing `to` does.
  e.kind_for = [](const Args& a) { return a.has("to") ? Kind::Change : Kind::Probe; };
  e.describe = [](const Args& a) {
    return "freeze the packages of " + a.str("venv") + (a.has("to") ? " into " + a.str("to") : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    need_venv(ctx, venv, view_of(ctx, venv));
    size_t n = installed(venv).size();
    return "writes " + plural(n, "package", "packages") + " to " + a.str("to") +
           (exists(a.str("to")) ? " (replacing it)" : "");
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
    Frozen f = freeze(ctx, venv, a, a.str_or("to", ""));
    return json{{"path", f.path}, {"packages", f.packages}, {"count", f.count}};
  };
  e.planned = [](const Args& a, const json&) {
    return json{{"path", a.has("to") ? abs_path(a.str("to")) : planned_snapshot(a)},
                {"packages", json::object()},
                {"count", 0}};
  };
  // A planned freeze into `to` leaves a snapshot a later pip.restore reads: what it will hold.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    if (!a.has("to")) return;
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    json content = json::object();
    if (is_unknown(v.others)) {
      content = v.others;
    } else {
      for (const auto& [norm, d] : v.inst) {
        if (kTooling.count(norm)) continue;
        if (d.version == kUnknownVersion) {
          content = version_in(v, norm);
          break;
        }
        content[d.name] = d.version;
      }
    }
    json& files = ctx.predictions()[kMod][kSnapshots];
    if (!files.is_object()) files = json::object();
    files[abs_path(a.str("to"))] = content;
  };
  // The freeze probe, after planned changes: the packages as they leave them. Its file is not
  // written (there is nothing true to write yet), so a restore from it is unknown.
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    if (a.has("to")) return nullptr;
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    if (!v.predicted) return nullptr;
    if (!v.created) require_venv(venv);
    json packages = json::object();
    size_t count = 0;
    if (is_unknown(v.others)) {
      packages = v.others;
    } else {
      Installed listed;
      for (const auto& [norm, d] : v.inst)
        if (!kTooling.count(norm)) listed[norm] = d;
      packages = view_versions_json(View{listed, v.why, v.others, v.by, true, v.created});
      count = listed.size();
    }
    return json{{"path", planned_snapshot(a)},
                {"packages", packages},
                {"count", is_unknown(packages) ? packages : json(count)}};
  };
  r.add(std::move(e));
}

void add_restore(Registry& r) {
  Effect e;
  e.name = "pip.restore";
  e.summary =
      "Bring a virtualenv back to a freeze snapshot: reinstall each name==version that differs "
      "(without dependency resolution: the snapshot is the whole set); with prune, also remove "
      "packages the snapshot does not list";
  e.kind = Kind::Change;
  e.args = {
      req("venv", ArgType::Path, "the virtualenv's directory"),
      req("snapshot", ArgType::Path, "a pip freeze file (pip.freeze's or pip.pin's snapshot)"),
      opt("prune", ArgType::Bool,
          "true: uninstall packages not in the snapshot (pip, setuptools, wheel are never "
          "removed); default false keeps them and says so",
          false)};
  for (auto& s : index_args()) e.args.push_back(s);
  e.args.push_back(opt("timeout", ArgType::Duration, "for each pip run", "10m"));
  e.returns =
      "{ changed = { name = { from =, to = } }, removed = { name = version }, kept = { name = "
      "version }, skipped = lines not restored (-e, URLs), snapshot = freeze taken before }";
  e.results = {{"changed", "map", "name → { from, to }"}, {"removed", "map", "name → version"}, {"kept", "map", "name → version"}, {"skipped", "list", "lines not restored (-e, URLs)"}, {"snapshot", "string", "freeze taken before"}};
  e.secrets_of = index_secrets;
  e.describe = [](const Args& a) {
    return "restore " + a.str("venv") + " to " + a.str("snapshot") +
           (a.boolean("prune") ? " (prune)" : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    need_venv(ctx, venv, v);
    std::string snapshot = abs_path(a.str("snapshot"));
    SnapshotView sv = snapshot_view(ctx, snapshot);
    if (!sv.unknown.empty()) throw EffectError(sv.unknown);
    auto p = plan_from(v.inst, sv.req);
    std::vector<std::pair<std::string, std::string>> installs;
    for (const auto& c : p.changes) installs.emplace_back(c.name, c.to);
    check_available(ctx, a, venv, installs);
    std::vector<std::string> names;
    for (const auto& w : p.wanted) names.push_back(w.given);
    if (a.boolean("prune"))
      for (const auto& d : p.extras) names.push_back(d.name);
    return json{{"text", restore_text(p, a.boolean("prune"))},
                {"changed", with_unknowns(changed_json(p.changes), v)},
                {"extras", p.extras.size()},
                {"basis", json{{"versions", basis_versions(v, names)},
                               {"snapshot_sha256", sha256_or_null(snapshot)}}}};
  };
  // After a restore: the snapshot's versions; with prune, nothing else but pip's own tooling.
  // A snapshot whose content the dry-run cannot know (one a planned change takes) leaves every
  // version unknown.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string venv = venv_of(a);
    std::string snapshot = abs_path(a.str("snapshot"));
    std::string by = "pip.restore of " + venv + " to " + a.str("snapshot");
    SnapshotView sv;
    try {
      sv = snapshot_view(ctx, snapshot);
    } catch (const std::exception& e) {
      sv.unknown = e.what();
    }
    View v = view_of(ctx, venv);
    json& entry = prediction_for(ctx, kMod, venv);
    entry["by"] = by;
    if (!sv.unknown.empty()) {
      all_unknown(entry, "pip.versions after " + by + " (" + sv.unknown + ")");
      return;
    }
    std::set<std::string> listed;
    for (const auto& [name, ver] : sv.req.pinned) {
      set_version(entry, name, ver);
      listed.insert(normalize(name));
    }
    if (a.boolean("prune")) {
      for (const auto& [norm, d] : v.inst)
        if (!listed.count(norm) && !kTooling.count(norm)) set_version(entry, d.name, nullptr);
      // Whatever unknown a change before may have added is removed now.
      entry["others"] = "live";
    }
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
    bool prune = a.boolean("prune");
    auto p = restore_plan(venv, abs_path(a.str("snapshot")));
    Installed before = installed(venv);
    Frozen snap = freeze(ctx, venv, a);
    ctx.note("the state before the restore is saved to " + snap.path);
    if (!p.changes.empty()) {
      std::vector<std::string> tail = install_flags(a);
      // The snapshot is a complete, consistent set: resolving dependencies again could fetch
      // versions it does not list.
      tail.push_back("--no-deps");
      for (const auto& c : p.changes) tail.push_back(normalize(c.name) + "==" + c.to);
      run_process_checked(ctx, pip_spec(venv, a, tail, false), true,
                          "pip install " + plural(p.changes.size(), "package", "packages"));
    }
    json removed = json::object(), kept = json::object();
    for (const auto& d : p.extras) (prune ? removed : kept)[d.name] = d.version;
    if (prune && !p.extras.empty()) {
      std::vector<std::string> tail = {"uninstall", "-y"};
      for (const auto& d : p.extras) tail.push_back(d.name);
      run_process_checked(ctx, pip_spec(venv, a, tail, false), true, "pip uninstall");
    }
    Installed after = installed(venv);
    json result{{"changed", diff_json(before, after)},
                {"removed", removed},
                {"kept", kept},
                {"skipped", p.skipped},
                {"snapshot", snap.path}};
    auto bad = mismatches(after, p.wanted, "after restore");
    if (prune)
      for (const auto& d : p.extras)
        if (find(after, d.name)) bad.push_back(d.name + " is still installed after pruning");
    if (!bad.empty()) throw EffectError(join(bad, "; "), result);
    return result;
  };
  e.planned = [](const Args& a, const json& pv) {
    return json{{"changed", pv_or(pv, "changed", json::object())},
        {"removed", json::object()},
        {"kept", json::object()},
        {"skipped", 0},
        {"snapshot", planned_snapshot(a)}};
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    std::string venv = venv_of(a);
    if (!exists(python_of(venv)) || !exists(abs_path(a.str("snapshot")))) return nullptr;
    auto p = restore_plan(venv, abs_path(a.str("snapshot")));
    return p.changes.empty() && (!a.boolean("prune") || p.extras.empty());
  };
  r.add(std::move(e));
}

void add_check(Registry& r) {
  Effect e;
  e.name = "pip.check";
  e.summary = "`pip check`: whether the installed packages' requirements are satisfied";
  e.args = {req("venv", ArgType::Path, "the virtualenv's directory"),
            opt("timeout", ArgType::Duration, "for pip check", "2m")};
  e.positional = {"venv"};
  e.checkable = true;
  e.returns = "{ ok, problems = { \"x 1.0 has requirement y>=2, but you have y 1.5.\", ... } }";
  e.results = {{"ok", "boolean", "no problems"}, {"problems", "list", "pip check's lines"}};
  e.describe = [](const Args& a) { return "check the dependencies in " + a.str("venv"); };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
    auto res = run_process_checked(ctx, pip_spec(venv, a, {"check"}, true), false, "pip check");
    json problems = json::array();
    for (const auto& l : split(res.stdout_text, '\n'))
      if (!trim(l).empty()) problems.push_back(trim(l));
    if (res.code == 0) return json{{"problems", json::array()}};
    if (res.code != 1 || problems.empty())
      throw EffectError("'pip check' exited " + std::to_string(res.code) + ": " +
                            tail_lines(res.stderr_text.empty() ? res.stdout_text : res.stderr_text),
                        json{{"problems", problems}});
    std::vector<std::string> first;
    for (size_t i = 0; i < problems.size() && i < 3; ++i)
      first.push_back(problems[i].get<std::string>());
    throw EffectError(plural(problems.size(), "dependency problem", "dependency problems") +
                          ": " + join(first, "; ") + (problems.size() > 3 ? "; …" : ""),
                      json{{"problems", problems}});
  };
  e.planned = [](const Args&, const json&) { return json{{"problems", json::array()}}; };
  // Whether requirements hold after planned changes is pip's to say: unknown until live.
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    View v = view_of(ctx, venv_of(a));
    if (!v.predicted) return nullptr;
    return unknown_value("pip.check after " + v.by);
  };
  r.add(std::move(e));
}

json venv_json(const std::string& path, const std::string& version, bool created,
               json previous) {
  return json{{"path", path},
              {"python", python_of(path)},
              {"version", version},
              {"created", created},
              {"previous", std::move(previous)}};
}

void add_venv(Registry& r) {
  Effect e;
  e.name = "pip.venv";
  e.summary =
      "Create a virtualenv (python -m venv) if it does not exist; clear = true replaces an "
      "existing one, whose old directory is kept in the run's artifacts";
  e.kind = Kind::Change;
  e.args = {
      req("path", ArgType::Path, "the virtualenv's directory"),
      opt("python", ArgType::String, "the interpreter that creates it", "python3"),
      opt("clear", ArgType::Bool, "true: replace an existing virtualenv with an empty one", false),
      opt("system_site_packages", ArgType::Bool, "give it access to the system's packages", false),
      opt("without_pip", ArgType::Bool, "skip installing pip into it", false),
      opt("timeout", ArgType::Duration, "for python -m venv", "5m")};
  e.positional = {"path"};
  e.returns =
      "{ path, python = <path>/bin/python, version, created = boolean, previous = artifact path of "
      "a cleared venv or nil }";
  e.results = {{"path", "string", "the venv"}, {"python", "string", "<path>/bin/python"}, {"version", "string", "Python version"}, {"created", "boolean", "whether it was created"}, {"previous", "string", "artifact path of a cleared venv, or nil"}};
  e.describe = [](const Args& a) {
    return (a.boolean("clear") ? "recreate virtualenv " : "create virtualenv ") + a.str("path");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    std::string path = abs_path(a.str("path"));
    if (exists(python_of(path))) {
      std::string what = "Python " + pyvenv_version(path) + ", " +
                         plural(installed(path).size(), "package", "packages");
      if (!a.boolean("clear")) return "exists already (" + what + "); left as it is";
      return "replaces the virtualenv at " + path + " (" + what +
             "; the old one is kept in the run's artifacts)";
    }
    std::error_code ec;
    if (exists(path) && !stdfs::is_empty(path, ec))
      would_fail(ctx, kMod, path, path + " exists and is not a virtualenv (no bin/python)");
    try {
      need_program(a.str("python"));
    } catch (const EffectError& e) {
      throw WouldFail(e.what());
    }
    os::ProcessSpec spec;
    spec.argv = {a.str("python"), "--version"};
    spec.timeout = Millis(30'000);
    auto res = run_process_checked(ctx, spec, true);
    return "creates a virtualenv at " + path + " with " + a.str("python") + " (" +
           trim(res.stdout_text.empty() ? res.stderr_text : res.stdout_text) + ")";
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string path = abs_path(a.str("path"));
    json previous = nullptr;
    if (exists(python_of(path))) {
      if (!a.boolean("clear")) return venv_json(path, pyvenv_version(path), false, nullptr);
    } else if (std::error_code ec; exists(path) && !stdfs::is_empty(path, ec)) {
      throw EffectError(path + " exists and is not a virtualenv (no bin/python)");
    }
    need_program(a.str("python"));
    if (exists(python_of(path))) {
      // Moved aside rather than `venv --clear`: a cleared venv cannot be taken back.
      std::string dest = artifact_path(ctx, "replaced", path, "");
      try {
        os::move_path(path, dest);
      } catch (const std::exception& ex) {
        throw EffectError(ex.what());
      }
      previous = dest;
      ctx.note("the old virtualenv is kept at " + dest);
    }
    os::ProcessSpec spec;
    spec.argv = {a.str("python"), "-m", "venv"};
    if (a.boolean("system_site_packages")) spec.argv.push_back("--system-site-packages");
    if (a.boolean("without_pip")) spec.argv.push_back("--without-pip");
    spec.argv.push_back(path);
    spec.unset_env = {"PYTHONHOME", "PYTHONPATH"};
    spec.timeout = a.duration("timeout");
    run_process_checked(ctx, spec, true, "python -m venv");
    if (!exists(python_of(path)))
      throw EffectError(a.str("python") + " -m venv finished but " + python_of(path) +
                        " is missing");
    return venv_json(path, pyvenv_version(path), true, previous);
  };
  e.planned = [](const Args& a, const json&) {
    return venv_json(abs_path(a.str("path")), "", true, nullptr);
  };
  // A new (or cleared) venv holds nothing but pip, at the version its Python bundles.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string path = abs_path(a.str("path"));
    if (exists(python_of(path)) && !a.boolean("clear")) return;
    json& entry = prediction_for(ctx, kMod, path);
    entry = json{{"changes", json::object()}, {"others", "absent"}, {"created", true},
                 {"by", (a.boolean("clear") ? "pip.venv (clear) " : "pip.venv ") + path}};
    if (!a.boolean("without_pip"))
      set_version(entry, "pip", unknown_value("pip's version in the virtualenv pip.venv creates"));
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    return exists(python_of(abs_path(a.str("path"))));
  };
  r.add(std::move(e));
}

void add_install(Registry& r) {
  Effect e;
  e.name = "pip.install";
  e.summary =
      "pip install from a requirements file or a list of requirements (a freeze snapshot is "
      "kept first); name==version lines are verified afterwards";
  e.kind = Kind::Change;
  e.args = {req("venv", ArgType::Path, "the virtualenv's directory"),
            opt("requirements", ArgType::Path, "a requirements file (pip install -r)"),
            opt("packages", ArgType::List,
                "requirement strings: { \"requests>=2.31\", \"jsonschema==4.23.0\" }")};
  for (auto& s : index_args()) e.args.push_back(s);
  e.args.push_back(opt("no_deps", ArgType::Bool, "true: do not install dependencies", false));
  e.args.push_back(opt("timeout", ArgType::Duration, "for pip install", "10m"));
  e.returns =
      "{ changed = { name = { from =, to = } } (from or to nil when added or removed), snapshot = "
      "freeze taken before }";
  e.results = {{"changed", "map", "name → { from, to } (nil when added or removed)"}, {"snapshot", "string", "freeze taken before"}};
  e.secrets_of = index_secrets;
  e.describe = [](const Args& a) {
    std::string what =
        a.has("requirements") ? "-r " + a.str("requirements") : join(a.strings("packages"), " ");
    return "pip install " + what + " in " + a.str("venv");
  };
  auto requested = [](const Args& a) {
    if (a.has("requirements") == a.has("packages"))
      bad_arg(a, "requirements", "give either requirements (a file) or packages (a list)");
    std::string text;
    if (a.has("requirements")) {
      if (!exists(a.str("requirements")))
        throw EffectError(a.str("requirements") + " does not exist");
      text = read_text(a.str("requirements"));
    } else {
      for (const auto& p : a.strings("packages")) {
        if (trim(p).empty() || trim(p).front() == '-')
          bad_arg(a, "packages", "not a requirement: \"" + p + "\"");
        text += p + "\n";
      }
    }
    return parse_requirements(text);
  };
  e.preview = [requested](EffectContext& ctx, const Args& a) -> json {
    if (a.has("requirements") && !a.has("packages") && !exists(abs_path(a.str("requirements"))))
      would_fail(ctx, kMod, abs_path(a.str("requirements")),
                 a.str("requirements") + " does not exist");
    auto req = requested(a);
    std::string venv = venv_of(a);
    View v = view_of(ctx, venv);
    need_venv(ctx, venv, v);
    const Installed& inst = v.inst;
    std::vector<VersionChange> changes;
    std::vector<std::string> names;
    for (const auto& n : requirement_names(req)) names.push_back(n.first);
    size_t same = 0;
    for (const auto& [name, ver] : req.pinned) {
      const Dist* d = find(inst, name);
      if (d && same_version(d->version, ver))
        ++same;
      else
        changes.push_back({name, d ? d->version : "", ver});
    }
    size_t total = req.pinned.size() + req.other.size();
    std::string s = plural(total, "requirement", "requirements") + ": ";
    s += changes.empty() ? "no pinned version differs" : change_text(changes);
    if (same) s += "; " + std::to_string(same) + " already at their version";
    if (!req.other.empty())
      s += "; " + std::to_string(req.other.size()) + " not pinned with == (pip decides)";
    // The exact pins that change are checked against find_links (with no_index, nothing else).
    std::vector<std::pair<std::string, std::string>> installs;
    for (const auto& c : changes) installs.emplace_back(c.name, c.to);
    check_available(ctx, a, venv, installs);
    json basis{{"versions", basis_versions(v, names)}};
    if (a.has("requirements")) basis["requirements_sha256"] = sha256_or_null(abs_path(a.str("requirements")));
    return json{{"text", s}, {"changed", with_unknowns(changed_json(changes), v)}, {"basis", basis}};
  };
  // The name==version lines are at their versions after an install that succeeds (it verifies
  // them); a named requirement without one is at a version pip picks (unknown); a line that names
  // no package (-r, -e, a URL) may install anything, so then every other version is unknown.
  e.predict = [requested](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string venv = venv_of(a);
    std::string by = "pip.install in " + venv;
    json& entry = prediction_for(ctx, kMod, venv);
    entry["by"] = by;
    Requirements req;
    try {
      req = requested(a);
    } catch (const std::exception& e) {
      all_unknown(entry, "pip.versions after " + by + " (" + e.what() + ")");
      return;
    }
    bool unnamed = false;
    for (const auto& [name, ver] : requirement_names(req)) {
      if (name.empty()) unnamed = true;
      else if (!ver.empty()) set_version(entry, name, ver);
      else set_version(entry, name, unknown_value("the version pip picks for " + name + " in " + by));
    }
    if (unnamed) entry["others"] = unknown_value("pip.versions after " + by);
  };
  e.apply = [requested](EffectContext& ctx, const Args& a) -> json {
    auto req = requested(a);
    std::string venv = venv_of(a);
    require_venv(venv);
    Installed before = installed(venv);
    Frozen snap = freeze(ctx, venv, a);
    auto tail = install_flags(a);
    std::optional<os::PrivateFile> private_reqs;
    if (a.boolean("no_deps")) tail.push_back("--no-deps");
    if (a.has("requirements")) {
      tail.push_back("-r");
      tail.push_back(abs_path(a.str("requirements")));
    } else {
      std::vector<std::string> pkgs;
      for (const auto& p : a.strings("packages")) pkgs.push_back(trim(p));
      // A reference holding a secret goes through a 0600 requirements file, not argv.
      if (secret_argv_index(ctx, pkgs) >= 0) {
        private_reqs.emplace("runbook-requirements-", join(pkgs, "\n") + "\n");
        tail.push_back("-r");
        tail.push_back(private_reqs->path());
      } else {
        tail.insert(tail.end(), pkgs.begin(), pkgs.end());
      }
    }
    run_process_checked(ctx, pip_spec(venv, a, tail, false), true, "pip install");
    Installed after = installed(venv);
    json result{{"changed", diff_json(before, after)}, {"snapshot", snap.path}};
    std::vector<Wanted> pinned;
    for (const auto& [n, v] : req.pinned) pinned.push_back({n, v});
    auto bad = mismatches(after, pinned, "after install");
    if (!bad.empty()) throw EffectError(join(bad, "; "), result);
    return result;
  };
  e.planned = [](const Args& a, const json& pv) {
    return json{{"changed", pv_or(pv, "changed", json::object())},
        {"snapshot", planned_snapshot(a)}};
  };
  r.add(std::move(e));
}

}  // namespace

void register_pip(Registry& r) {
  add_versions(r);
  add_pin(r);
  add_freeze(r);
  add_restore(r);
  add_check(r);
  add_venv(r);
  add_install(r);
}

}  // namespace rb::pkg
