// pip.*: Python packages in a virtualenv. pip runs as the venv's own interpreter
// (<venv>/bin/python -m pip), so no activation and no PATH lookup decide which pip acts. What is
// installed is read from the venv's *.dist-info metadata directly: it is what pip itself reads,
// and it costs no interpreter start in a preview.
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/strings.h"
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
          opt("extra_index_url", ArgType::String, "an additional index (PIP_EXTRA_INDEX_URL)"),
          opt("find_links", ArgType::String, "a directory or URL of wheels to install from"),
          opt("no_index", ArgType::Bool, "true: never contact an index (offline, with find_links)",
              false)};
}

std::vector<std::string> index_secrets(const Args& a) {
  std::vector<std::string> urls;
  for (const char* k : {"index_url", "extra_index_url", "find_links"})
    if (a.has(k)) urls.push_back(a.str(k));
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
  spec.timeout = a.duration_or("timeout", read_only ? Millis(120'000) : kInstallTimeout);
  return spec;
}

std::vector<std::string> install_flags(const Args& a) {
  std::vector<std::string> out = {"install"};
  if (a.has("no_index") && a.boolean("no_index")) out.push_back("--no-index");
  if (a.has("find_links")) {
    std::string fl = a.str("find_links");
    out.push_back("--find-links");
    out.push_back(fl.find("://") == std::string::npos ? abs_path(fl) : fl);
  }
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

RestorePlan restore_plan(const std::string& venv, const std::string& snapshot) {
  if (snapshot.find("/(dry-run) pip freeze of ") != std::string::npos)
    throw EffectError("the snapshot is taken when the run is live");
  if (!exists(snapshot)) throw EffectError("snapshot " + snapshot + " does not exist");
  Requirements req = parse_requirements(read_text(snapshot));
  RestorePlan p;
  p.skipped = req.other.size();
  Installed inst = installed(venv);
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
  e.secrets_of = index_secrets;
  e.describe = [](const Args& a) {
    std::string s;
    for (const auto& [n, v] : a.string_map("packages")) s += (s.empty() ? "" : " ") + n + "==" + v;
    return "pin " + s + " in " + a.str("venv");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    auto wanted = wanted_of(a);
    std::string venv = venv_of(a);
    require_venv(venv);
    auto changes = changes_of(installed(venv), wanted);
    return change_preview(changes);
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
  // Writing into the run's own artifacts changes nothing of the world; writing `to` does.
  e.kind_for = [](const Args& a) { return a.has("to") ? Kind::Change : Kind::Probe; };
  e.describe = [](const Args& a) {
    return "freeze the packages of " + a.str("venv") + (a.has("to") ? " into " + a.str("to") : "");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
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
  e.secrets_of = index_secrets;
  e.describe = [](const Args& a) {
    return "restore " + a.str("venv") + " to " + a.str("snapshot") +
           (a.boolean("prune") ? " (prune)" : "");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    std::string venv = venv_of(a);
    require_venv(venv);
    auto p = restore_plan(venv, abs_path(a.str("snapshot")));
    return json{{"text", restore_text(p, a.boolean("prune"))},
                {"changed", changed_json(p.changes)},
                {"extras", p.extras.size()}};
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
      throw EffectError(path + " exists and is not a virtualenv (no bin/python)");
    need_program(a.str("python"));
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
  e.preview = [requested](EffectContext&, const Args& a) -> json {
    auto req = requested(a);
    std::string venv = venv_of(a);
    require_venv(venv);
    Installed inst = installed(venv);
    std::vector<VersionChange> changes;
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
    return json{{"text", s}, {"changed", changed_json(changes)}};
  };
  e.apply = [requested](EffectContext& ctx, const Args& a) -> json {
    auto req = requested(a);
    std::string venv = venv_of(a);
    require_venv(venv);
    Installed before = installed(venv);
    Frozen snap = freeze(ctx, venv, a);
    auto tail = install_flags(a);
    if (a.boolean("no_deps")) tail.push_back("--no-deps");
    if (a.has("requirements")) {
      tail.push_back("-r");
      tail.push_back(abs_path(a.str("requirements")));
    } else {
      for (const auto& p : a.strings("packages")) tail.push_back(trim(p));
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
