#include "core/settings.h"
#include "lua/runbook.h"

#include <limits.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/hash.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "core/source_file.h"
#include "core/strings.h"
#include "dispatch/redact.h"
#include "lua/binding.h"
#include "lua/convert.h"
#include "lua/modules.h"

namespace rb {
namespace fs = std::filesystem;

namespace {

const char* kRunbookKey = "runbook.self";

// Bounded: a device, a FIFO or a huge file is refused at once (`runbook exec /dev/zero`).
std::string read_text(const std::string& path) {
  std::string text, err;
  if (!read_source_file(path, &text, &err)) throw UsageError(err);
  return text;
}

Runbook* self(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kRunbookKey);
  auto* r = static_cast<Runbook*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return r;
}

// __index of the `p` table a step gets: a declared parameter without a value is nil, any other
// name is a runbook bug (`p.rooot`), named with the declared ones. Upvalues: the set of declared
// names, and their list as text.
int undefined_param(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
      lua_pushnil(L);
      return 1;
    }
    lua_pop(L, 1);
  }
  std::string name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2);
  luaL_where(L, 1);  // where the runbook read it (level 0 is this metamethod)
  std::string msg = std::string(lua_tostring(L, -1)) + "undefined parameter '" + name +
                    "' (declared: " + lua_tostring(L, lua_upvalueindex(2)) + ")";
  lua_pushlstring(L, msg.data(), msg.size());
  return lua_error(L);
}

// The parameters as a step sees them: strict (see undefined_param).
void push_params(lua_State* L, const json& params, const std::vector<ParamSpec>& specs) {
  push_json(L, params);
  if (!lua_istable(L, -1)) return;
  lua_createtable(L, 0, 1);
  lua_createtable(L, 0, static_cast<int>(specs.size()));
  std::string names;
  for (const auto& p : specs) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, p.name.c_str());
    names += (names.empty() ? "" : ", ") + p.name;
  }
  lua_pushstring(L, names.empty() ? "none" : names.c_str());
  lua_pushcclosure(L, undefined_param, 2);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}

std::string where(lua_State* L) {
  luaL_where(L, 1);
  std::string w = lua_tostring(L, -1);
  lua_pop(L, 1);
  return w;
}

// Lenient (a non-string reads as ""): new declaration fields use opt_string instead.
[[maybe_unused]] std::string field_string(lua_State* L, int t, const char* key) {
  lua_getfield(L, t, key);
  std::string out = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return out;
}

// Declaration fields are checked for their type: a wrong one is a problem reported with the
// declaration's file:line, never a silent default (`timeout = true` once meant 30 minutes).
// Present and a string: its text; absent: "".
std::string opt_string(lua_State* L, int t, const char* key, const std::string& owner,
                       std::vector<std::string>& problems) {
  lua_getfield(L, t, key);
  std::string out;
  if (lua_type(L, -1) == LUA_TSTRING)
    out = lua_tostring(L, -1);
  else if (!lua_isnil(L, -1))
    problems.push_back(owner + "'" + key + "' must be a string, not " + luaL_typename(L, -1));
  lua_pop(L, 1);
  return out;
}

bool opt_bool(lua_State* L, int t, const char* key, const std::string& owner,
              std::vector<std::string>& problems) {
  lua_getfield(L, t, key);
  bool out = false;
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    out = lua_toboolean(L, -1);
  else if (!lua_isnil(L, -1))
    problems.push_back(owner + "'" + key + "' must be true or false, not " +
                       luaL_typename(L, -1));
  lua_pop(L, 1);
  return out;
}

// A list of strings (numbers taken as their text): { "a", "b" }, nothing else.
std::optional<std::vector<std::string>> string_list(lua_State* L, int idx) {
  if (!lua_istable(L, idx)) return std::nullopt;
  idx = lua_absindex(L, idx);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
  std::vector<std::string> out;
  lua_Integer fields = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    ++fields;
    lua_pop(L, 1);
  }
  if (fields != n) return std::nullopt;  // holes or named fields
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, i);
    int type = lua_type(L, -1);
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
      size_t len = 0;
      const char* c = lua_tolstring(L, -1, &len);
      out.emplace_back(c, len);
    }
    lua_pop(L, 1);
    if (type != LUA_TSTRING && type != LUA_TNUMBER) return std::nullopt;
  }
  return out;
}

bool is_param_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// The text a typed value is compared with `choices` by: a list's elements one by one.
std::vector<std::string> choice_texts(const json& v) {
  std::vector<std::string> out;
  auto text = [](const json& e) { return e.is_string() ? e.get<std::string>() : e.dump(); };
  if (v.is_array())
    for (const auto& e : v) out.push_back(text(e));
  else
    out.push_back(text(v));
  return out;
}

// Nothing when `value` is among the parameter's choices (or it has none), else the first
// value that is not.
std::optional<std::string> not_a_choice(const ParamSpec& p, const json& value) {
  if (p.choices.empty()) return std::nullopt;
  for (const auto& t : choice_texts(value))
    if (std::find(p.choices.begin(), p.choices.end(), t) == p.choices.end()) return t;
  return std::nullopt;
}

const char* kParamTypes[] = {"string", "int", "number", "bool", "path", "url", "duration", "list"};

// Text from the command line (or a declared default) -> the typed value, or an error.
std::optional<json> convert_param(const ParamSpec& p, const json& v, std::string* why) {
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  if (p.type == "string") {
    if (!v.is_string() && !v.is_number()) return *why = "a string", std::nullopt;
    return json(text);
  }
  if (p.type == "int") {
    if (v.is_number_integer()) return v;
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) <= 9.2e18)
        return json(static_cast<int64_t>(d));
    } else if (v.is_string()) {
      if (auto n = parse_int(text)) return json(*n);
    }
    return *why = "an integer (in the 64-bit range)", std::nullopt;
  }
  if (p.type == "number") {
    // NaN and infinities are refused: JSON cannot hold them (the journal would say null).
    if (v.is_number() && (!v.is_number_float() || std::isfinite(v.get<double>()))) return v;
    if (v.is_string())
      if (auto d = parse_finite(text)) return json(*d);
    return *why = "a finite number", std::nullopt;
  }
  if (p.type == "bool") {
    if (v.is_boolean()) return v;
    if (text == "true" || text == "yes" || text == "1" || text == "on") return json(true);
    if (text == "false" || text == "no" || text == "0" || text == "off") return json(false);
    return *why = "true or false", std::nullopt;
  }
  if (p.type == "path") {
    if (!v.is_string() || text.empty()) return *why = "a path", std::nullopt;
    std::error_code ec;
    fs::path abs = fs::absolute(text, ec);
    return json(ec ? text : abs.lexically_normal().string());
  }
  if (p.type == "url") {
    if (!v.is_string() || !is_url(text))
      return *why = "a URL like http://host:port/path", std::nullopt;
    return json(text);
  }
  if (p.type == "duration") {
    if (!v.is_string() || !parse_duration(text)) return *why = "a duration like 30s", std::nullopt;
    return json(text);
  }
  if (p.type == "list") {
    const char* what = "a list of strings (a Lua list, or comma-separated text)";
    if (v.is_object() && v.empty()) return json::array();  // Lua's {} converts as a table
    if (v.is_array()) {
      for (const auto& e : v)
        if (!e.is_string() && !e.is_number()) return *why = what, std::nullopt;
      return v;
    }
    if (!v.is_string()) return *why = what, std::nullopt;
    json arr = json::array();
    if (!text.empty())
      for (auto& part : split(text, ',')) arr.push_back(trim(part));
    return arr;
  }
  return *why = "a known type", std::nullopt;
}

// Walks a lock template: `text` outside placeholders, `{name}` for each placeholder. Returns a
// problem ("" when well formed); `on_param` gets each name in order.
std::string walk_lock_template(const std::string& t,
                               const std::function<void(const std::string&)>& on_text,
                               const std::function<void(const std::string&)>& on_param) {
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find_first_of("{}", i);
    on_text(t.substr(i, open == std::string::npos ? std::string::npos : open - i));
    if (open == std::string::npos) break;
    if (t[open] == '}') return "'}' without '{' at offset " + std::to_string(open);
    size_t close = t.find_first_of("{}", open + 1);
    if (close == std::string::npos || t[close] != '}')
      return "'{' at offset " + std::to_string(open) + " has no closing '}'";
    on_param(t.substr(open + 1, close - open - 1));
    i = close + 1;
  }
  return "";
}

std::string lock_template_problem(const std::string& t, const std::vector<ParamSpec>& params) {
  std::string problem;
  std::string shape = walk_lock_template(t, [](const std::string&) {}, [&](const std::string& n) {
    if (!problem.empty()) return;
    auto it = std::find_if(params.begin(), params.end(),
                           [&](const ParamSpec& p) { return p.name == n; });
    if (it == params.end()) {
      std::string names;
      for (const auto& p : params) names += (names.empty() ? "" : ", ") + p.name;
      problem = "unknown parameter '{" + n + "}' (declared: " +
                (names.empty() ? std::string("none") : names) + ")";
    } else if (it->secret) {
      problem = "parameter '{" + n + "}' is secret (the lock key is shown to everyone)";
    }
  });
  return shape.empty() ? problem : shape;
}

// A parameter's value as it appears in a lock key: text as it is, a path without a trailing
// slash (so /srv/app/ and /srv/app are one target), a list joined by commas.
std::string key_text(const ParamSpec* p, const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (p && p->type == "path")
      while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  }
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ",") + key_text(nullptr, e);
    return out;
  }
  return v.dump();
}

}  // namespace

std::string lock_key(const RunbookDecl& d, const json& params) {
  auto value = [&](const std::string& name) {
    const ParamSpec* spec = nullptr;
    for (const auto& p : d.params)
      if (p.name == name) spec = &p;
    return key_text(spec, params.is_object() && params.contains(name) ? params[name] : json());
  };
  if (!d.lock.empty()) {
    std::string out;
    walk_lock_template(d.lock, [&](const std::string& t) { out += t; },
                       [&](const std::string& n) { out += value(n); });
    return out;
  }
  std::string targets;
  for (const auto& p : d.params)  // sorted by name
    if (p.target) targets += (targets.empty() ? "" : ",") + p.name + "=" + value(p.name);
  return targets.empty() ? d.name : d.name + ":" + targets;
}

// $RUNBOOK_STDLIB; else <exe>/../share/runbook/stdlib, so an installed (or packaged, or
// relocated) runbook uses its own; else the source tree's (a build tree's runbook); else the
// configured prefix's.
std::string stdlib_dir() {
  if (const char* e = std::getenv("RUNBOOK_STDLIB"); e && *e) return e;
  std::error_code ec;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    fs::path p = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path().parent_path() /
                 "share/runbook/stdlib";
    if (fs::is_directory(p, ec)) return p.string();
  }
#ifdef RUNBOOK_STDLIB_DIR
  if (fs::is_directory(RUNBOOK_STDLIB_DIR, ec)) return RUNBOOK_STDLIB_DIR;
#endif
#ifdef RUNBOOK_STDLIB_INSTALLED
  return RUNBOOK_STDLIB_INSTALLED;
#else
  return "stdlib";
#endif
}

Runbook::Runbook(const Registry& registry, size_t memory_limit)
    : registry_(registry), memory_limit_(memory_limit) {}

void Runbook::load(const std::string& file) {
  decl_ = RunbookDecl{};
  decl_.file = file;
  std::error_code ec;
  decl_.abspath = fs::absolute(file, ec).lexically_normal().string();
  std::string code = read_text(file);
  decl_.sha256 = sha256_hex(code);

  SandboxOptions so;
  so.memory_limit = memory_limit_;
  so.module_dirs = {fs::path(decl_.abspath).parent_path().string(), stdlib_dir()};
  sandbox_ = std::make_unique<Sandbox>(so);
  std::string err;
  try {
    bool built = sandbox_->protect(
        [this](lua_State* L) {
          lua_pushlightuserdata(L, this);
          lua_setfield(L, LUA_REGISTRYINDEX, kRunbookKey);
          install_effects(L, registry_);
          install_pure_modules(L);
          // A bad text from outside is the data failing, not the runbook (exit 1, not 2).
          lua_getglobal(L, "json");
          lua_getfield(L, -1, "decode");
          sandbox_->failure_function(-1);
          lua_pop(L, 2);
          lua_pushglobaltable(L);
          lua_pushcfunction(L, &Runbook::l_runbook);
          lua_setfield(L, -2, "runbook");
          lua_pushcfunction(L, &Runbook::l_step);
          lua_setfield(L, -2, "step");
          lua_pop(L, 1);
        },
        &err);
    if (!built) throw UsageError("cannot build the runbook's interpreter: " + err);
    lua_State* L = sandbox_->L();

    // The prelude: friendlier helpers written in Lua on top of the effects (wait.until, ...).
    std::string prelude = stdlib_dir() + "/prelude.lua";
    if (fs::is_regular_file(prelude, ec)) {
      if (!sandbox_->load_source(read_text(prelude), "@" + prelude, &err)) throw UsageError(err);
      if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        std::string msg = sandbox_->error_text(-1);
        lua_settop(L, 0);
        throw UsageError("stdlib prelude: " + msg);
      }
    }

    if (!sandbox_->load_source(lua_source_text(code), "@" + file, &err)) throw UsageError(err);
    sandbox_->arm(std::chrono::steady_clock::now() + std::chrono::seconds(10),
                  "declaring the runbook took longer than 10s");
    declaring_ = true;
    int rc = lua_pcall(L, 0, 0, 0);
    declaring_ = false;
    // The message is taken while the deadline still holds: its __tostring is the runbook's code.
    std::string msg = rc == LUA_OK ? "" : sandbox_->error_text(-1);
    if (rc != LUA_OK && !sandbox_->killed().empty()) msg = file + ": " + sandbox_->killed();
    lua_settop(L, 0);
    sandbox_->disarm();
    if (rc != LUA_OK) throw UsageError(msg);
  } catch (const LuaPanic& e) {
    declaring_ = false;
    throw UsageError(file + ": " + e.what());
  }
  if (!declared_) throw UsageError(file + ": no runbook{ name = ..., version = ... } declaration");
  if (decl_.steps.empty()) throw UsageError(file + ": declares no step(...)");
}

int Runbook::l_runbook(lua_State* L) {
  Runbook* rb = self(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (rb->declared_) return luaL_error(L, "runbook{} is declared twice");
  static const std::vector<std::string> known = {"name", "version", "summary", "params",
                                                 "description", "tags", "owner", "lock"};
  std::vector<std::string> problems;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    if (std::find(known.begin(), known.end(), key) == known.end())
      problems.push_back("unknown field '" + key + "'");
    lua_pop(L, 1);
  }
  auto& d = rb->decl_;
  size_t before = problems.size();
  d.name = opt_string(L, 1, "name", "", problems);
  bool name_typed = problems.size() == before;
  d.version = opt_string(L, 1, "version", "", problems);
  bool version_typed = problems.size() == before + (name_typed ? 0 : 1);
  d.summary = opt_string(L, 1, "summary", "", problems);
  opt_string(L, 1, "description", "", problems);
  opt_string(L, 1, "owner", "", problems);
  lua_getfield(L, 1, "tags");
  if (!lua_isnil(L, -1) && !string_list(L, -1))
    problems.push_back("'tags' must be a list of strings");
  lua_pop(L, 1);
  if (d.name.empty() && name_typed)
    problems.push_back("missing required field 'name'");
  else if (!d.name.empty() && !is_plain_name(d.name))
    problems.push_back("name '" + truncate(d.name, 80) +
                       "' may hold only letters, digits, '.', '_' and '-'");
  if (d.version.empty() && version_typed)
    problems.push_back("missing required field 'version'");
  else if (!d.version.empty() && !is_semver(d.version))
    problems.push_back("version '" + truncate(d.version, 80) + "' is not semver (like 1.2.0)");

  lua_getfield(L, 1, "params");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) {
      problems.push_back("params must be a table");
    } else {
      int pt = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, pt)) {
        if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1)) {
          problems.push_back("params: each entry is name = { type = ..., ... }");
          lua_pop(L, 1);
          continue;
        }
        ParamSpec p;
        p.name = lua_tostring(L, -2);
        int t = lua_gettop(L);
        if (!is_param_name(p.name))
          problems.push_back("param '" + truncate(p.name, 80) +
                             "': a name is a letter or '_', then letters, digits, '_', '-'");
        std::string owner = "param '" + p.name + "': ";
        static const std::vector<std::string> pknown = {"type", "required", "default", "secret",
                                                        "doc", "choices", "target"};
        lua_pushnil(L);
        while (lua_next(L, t)) {
          std::string k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
          if (std::find(pknown.begin(), pknown.end(), k) == pknown.end())
            problems.push_back("param '" + p.name + "': unknown field '" + k + "'");
          lua_pop(L, 1);
        }
        lua_getfield(L, t, "type");
        bool typed = !lua_isnil(L, -1);
        lua_pop(L, 1);
        size_t before_type = problems.size();
        std::string type = opt_string(L, t, "type", owner, problems);
        p.type = typed ? type : "string";
        if (typed && problems.size() == before_type && std::find(std::begin(kParamTypes), std::end(kParamTypes), p.type) ==
                         std::end(kParamTypes))
          problems.push_back(owner + "unknown type '" + truncate(p.type, 40) +
                             "' (string, int, number, bool, path, url, duration, list)");
        p.required = opt_bool(L, t, "required", owner, problems);
        p.secret = opt_bool(L, t, "secret", owner, problems);
        p.doc = opt_string(L, t, "doc", owner, problems);
        p.target = opt_bool(L, t, "target", owner, problems);
        if (p.target && p.secret)
          problems.push_back(owner + "a secret cannot be a target (the lock key is shown to everyone)");
        lua_getfield(L, t, "default");
        try {
          p.def = lua_to_json(L, -1, "param '" + p.name + "' default");
        } catch (const std::exception& e) {
          problems.push_back(e.what());
        }
        lua_pop(L, 1);
        lua_getfield(L, t, "choices");
        if (!lua_isnil(L, -1)) {
          auto choices = string_list(L, -1);
          if (!choices || choices->empty())
            problems.push_back(owner + "choices must be a non-empty list of strings, like "
                                       "{ \"a\", \"b\" }");
          else
            p.choices = std::move(*choices);
        }
        lua_pop(L, 1);
        if (!p.def.is_null()) {
          std::string why;
          auto def = convert_param(p, p.def, &why);
          if (!def)
            problems.push_back(owner + "default is not " + why);
          else if (auto off = not_a_choice(p, *def))
            problems.push_back(owner + "default '" + truncate(*off, 80) + "' is not one of " +
                               join(p.choices, ", "));
        }
        d.params.push_back(std::move(p));
        lua_pop(L, 1);
      }
      std::sort(d.params.begin(), d.params.end(),
                [](const ParamSpec& a, const ParamSpec& b) { return a.name < b.name; });
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "lock");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
      problems.push_back("lock must be a non-empty string like \"app:{app}\"");
    else if (std::string why = lock_template_problem(lua_tostring(L, -1), d.params); !why.empty())
      problems.push_back("lock: " + why);
    else
      d.lock = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  if (!problems.empty()) {
    std::string msg = "runbook{}: " + join(problems, "; ");  // luaL_error adds file:line
    return luaL_error(L, "%s", msg.c_str());
  }
  rb->declared_ = true;
  return 0;
}

// step("name", fn) or step{ "name", timeout = "30s", retries = 2, retry_delay = "5s",
// always = true, run = fn }
int Runbook::l_step(lua_State* L) {
  Runbook* rb = self(L);
  // The step list is fixed once the file's top level has run: run_steps walks it.
  if (!rb->declaring_ || rb->sandbox_->in_step)
    return luaL_error(L, "step() may be called only at the top level of the runbook, while it "
                         "is declared, not inside a step");
  StepDecl s;
  s.site = where(L);
  if (!s.site.empty() && s.site.back() == ' ') s.site.pop_back();
  if (lua_type(L, 1) == LUA_TSTRING) {
    s.name = lua_tostring(L, 1);
    if (lua_type(L, 2) != LUA_TFUNCTION)
      return luaL_error(L, "step '%s': the second argument must be a function, not %s",
                        s.name.c_str(), luaL_typename(L, 2));
    lua_pushvalue(L, 2);
  } else if (lua_istable(L, 1)) {
    std::vector<std::string> problems;
    lua_rawgeti(L, 1, 1);
    bool positional = !lua_isnil(L, -1);
    if (positional && lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "step: the name must be a string, not %s", luaL_typename(L, -1));
    if (positional) s.name = lua_tostring(L, -1);
    lua_pop(L, 1);
    std::string named = opt_string(L, 1, "name", "step: ", problems);
    if (!problems.empty()) return luaL_error(L, "%s", problems.front().c_str());
    if (!positional) s.name = named;
    static const std::vector<std::string> known = {"name", "run", "timeout", "retries",
                                                   "retry_delay", "always"};
    std::string owner = "step '" + truncate(s.name, 80) + "': ";
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string k = lua_tostring(L, -2);
        if (std::find(known.begin(), known.end(), k) == known.end())
          problems.push_back(owner + "unknown field '" + truncate(k, 40) +
                             "' (name, run, timeout, retries, retry_delay, always)");
      } else if (!(lua_isinteger(L, -2) && lua_tointeger(L, -2) == 1)) {
        problems.push_back(owner + "only the name is given by position: { \"name\", run = fn, "
                                   "... }");
      }
      lua_pop(L, 1);
    }
    // Durations are strings like "30s"; anything else (true, "", 30, "0s") is an error, not
    // the 30-minute default.
    auto duration_field = [&](const char* key, bool positive, long long max_h, Millis* into) {
      lua_getfield(L, 1, key);
      bool given = !lua_isnil(L, -1);
      bool is_text = lua_type(L, -1) == LUA_TSTRING;
      std::string text = is_text ? lua_tostring(L, -1) : luaL_typename(L, -1);
      lua_pop(L, 1);
      if (!given) return;
      auto d = is_text ? parse_duration(text) : std::nullopt;
      if (!is_text)
        problems.push_back(owner + key + " must be a duration like \"30s\", not a " + text);
      else if (!d || d->count() > max_h * 3'600'000)
        problems.push_back(owner + key + " '" + truncate(text, 40) +
                           "' is not a duration like \"30s\" (at most " + std::to_string(max_h) +
                           "h)");
      else if (positive && d->count() <= 0)
        problems.push_back(owner + key + " '" + text + "' must be more than 0");
      else
        *into = *d;
    };
    duration_field("timeout", true, kMaxDurationMs / 3'600'000, &s.timeout);
    // A day: the delay doubles with each retry (up to 64x), which must stay a valid deadline.
    duration_field("retry_delay", false, 24, &s.retry_delay);
    lua_getfield(L, 1, "retries");
    if (!lua_isnil(L, -1)) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 100)
        problems.push_back(owner + "retries must be an integer from 0 to 100");
      else
        s.retries = static_cast<int>(lua_tointeger(L, -1));
    }
    lua_pop(L, 1);
    s.always = opt_bool(L, 1, "always", owner, problems);
    lua_getfield(L, 1, "run");
    if (!lua_isfunction(L, -1))
      problems.push_back(owner + "'run' must be a function, not " + luaL_typename(L, -1));
    if (!problems.empty()) return luaL_error(L, "%s", join(problems, "; ").c_str());
  } else {
    return luaL_error(L, "step expects (name, function) or { name, run = function, ... }");
  }
  if (s.name.empty()) return luaL_error(L, "step without a name");
  s.fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rb->decl_.steps.push_back(std::move(s));
  return 0;
}

json Runbook::resolve_params(const std::map<std::string, std::string>& given,
                             std::vector<std::string>* secrets) const {
  std::vector<std::string> problems;
  json out = json::object();
  for (const auto& [k, v] : given) {
    bool known = false;
    for (const auto& p : decl_.params) known = known || p.name == k;
    if (!known) {
      std::string names;
      for (const auto& p : decl_.params) names += (names.empty() ? "" : ", ") + p.name;
      problems.push_back("unknown parameter '" + k + "' (this runbook takes: " +
                         (names.empty() ? std::string("none") : names) + ")");
    }
  }
  for (const auto& p : decl_.params) {
    json raw;
    auto it = given.find(p.name);
    if (it != given.end())
      raw = it->second;
    else if (!p.def.is_null())
      raw = p.def;
    if (raw.is_null()) {
      if (p.required)
        problems.push_back("missing required parameter '" + p.name + "' (" + p.type +
                           (p.doc.empty() ? "" : ": " + p.doc) + ")");
      continue;
    }
    std::string why;
    auto value = convert_param(p, raw, &why);
    if (!value) {
      problems.push_back("parameter '" + p.name + "' must be " + why + ", got " +
                         (p.secret ? std::string("(secret)") : "'" + (raw.is_string() ? raw.get<std::string>() : raw.dump()) + "'"));
      continue;
    }
    if (not_a_choice(p, *value)) {
      problems.push_back("parameter '" + p.name + "' must be one of " + join(p.choices, ", "));
      continue;
    }
    if (p.secret && secrets && value->is_string()) secrets->push_back(value->get<std::string>());
    out[p.name] = *value;
  }
  if (!problems.empty()) throw UsageError(decl_.file + ": " + join(problems, "\n  "));
  return out;
}

json Runbook::override_params(const json& base, const std::map<std::string, std::string>& given,
                              const std::optional<std::vector<std::string>>& secrets_given,
                              std::vector<std::string>* secrets, json* changes) const {
  std::vector<std::string> problems;
  json out = base.is_object() ? base : json::object();
  for (const auto& [k, text] : given) {
    const ParamSpec* spec = nullptr;
    for (const auto& p : decl_.params)
      if (p.name == k) spec = &p;
    if (!spec) {
      problems.push_back("unknown parameter '" + k + "'");
      continue;
    }
    std::string why;
    auto value = convert_param(*spec, json(text), &why);
    if (!value) {
      problems.push_back("parameter '" + k + "' must be " + why);
      continue;
    }
    if (not_a_choice(*spec, *value)) {
      problems.push_back("parameter '" + k + "' must be one of " + join(spec->choices, ", "));
      continue;
    }
    if (value->is_string() && holds_masked_password(value->get<std::string>())) {
      problems.push_back("parameter '" + k + "' is given with a masked password (***): give " +
                         "the password itself, never the journal's masked form");
      continue;
    }
    // A value holding a password is compared, and shown, masked: the journal has it so.
    json shown = value->is_string() ? json(mask_embedded(value->get<std::string>())) : *value;
    if (!spec->secret && changes && (!out.contains(k) || out[k] != shown))
      (*changes)[k] = json{{"from", out.contains(k) ? out[k] : json(nullptr)}, {"to", shown}};
    out[k] = *value;
  }
  for (const auto& p : decl_.params) {
    if (p.secret || given.count(p.name) || !out.contains(p.name) || !out[p.name].is_string() ||
        !holds_masked_password(out[p.name].get<std::string>()))
      continue;
    // The password was not kept: never act on the masked value. The default, when it is what
    // the original had, is taken again; otherwise it must be given again.
    std::string why;
    if (p.def.is_string() && mask_embedded(p.def.get<std::string>()) == out[p.name])
      if (auto v = convert_param(p, p.def, &why)) {
        out[p.name] = *v;
        continue;
      }
    std::string up;
    for (char ch : p.name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    problems.push_back("parameter '" + p.name + "' holds a password (" +
                       out[p.name].get<std::string>() + "), which was not kept: give it again " +
                       "in a --param-file FILE (a line " + p.name + "=...), as RUNBOOK_PARAM_" +
                       up + " in the environment, at the prompt (on a terminal), or with --param " +
                       p.name + "=...");
  }
  for (const auto& p : decl_.params) {
    if (!p.secret || !out.contains(p.name)) continue;
    bool defaulted = secrets_given && !p.def.is_null() &&
                     std::find(secrets_given->begin(), secrets_given->end(), p.name) ==
                         secrets_given->end();
    // A secret's recorded value is always masked ("***", or a URL/DSN with "***" for its
    // password): never acted on. It is given again, or the default it had is taken again.
    bool from_default = false;
    if (!given.count(p.name) && defaulted) {
      std::string why;
      if (auto v = convert_param(p, p.def, &why)) { out[p.name] = *v; from_default = true; }
    }
    if (!given.count(p.name) && !from_default) {
      std::string up;
      for (char ch : p.name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      problems.push_back("parameter '" + p.name + "' is secret, so it was not kept: " +
                         "give it again in a --param-file FILE (a line " + p.name +
                         "=...), as RUNBOOK_PARAM_" + up + " in the environment, at the prompt " +
                         "(on a terminal), or with --param " + p.name + "=...");
      continue;
    }
    if (secrets && out[p.name].is_string()) secrets->push_back(out[p.name].get<std::string>());
  }
  if (!problems.empty()) throw UsageError(decl_.file + ": " + join(problems, "\n  "));
  return out;
}

Runbook::StepOutcome Runbook::run_step(Dispatcher& d, const StepDecl& s, int idx,
                                       const json& params, int attempt) {
  lua_State* L = sandbox_->L();
  auto deadline = std::chrono::steady_clock::now() + s.timeout;
  std::string overran = "step '" + s.name + "' exceeded its timeout of " + format_duration(s.timeout);
  // A test case's time limit comes first (`runbook test`); the step's own message stays, so that
  // a faked timeout reads as a live one.
  bool capped = d.options().deadline_cap < deadline;
  if (capped) deadline = d.options().deadline_cap;
  d.set_step(idx, attempt, deadline, s.name);
  sandbox_->arm(deadline, overran);
  sandbox_->in_step = true;
  sandbox_->unknown_touched = 0;
  sandbox_->unknown_reason.clear();
  sandbox_->unknown_loop.clear();
  int fn_ref = s.fn_ref;
  std::string error;
  ErrorKind kind = ErrorKind::None;
  const auto& specs = decl_.params;
  bool ok = sandbox_->protect(
      [&](lua_State* L) {
        // `run.step` / `run.step_name`: where the run is (progress notices read them).
        lua_pushglobaltable(L);
        lua_pushliteral(L, "run");
        if (lua_rawget(L, -2) == LUA_TTABLE) {
          lua_pushliteral(L, "step");
          lua_pushinteger(L, idx);
          lua_rawset(L, -3);
          lua_pushliteral(L, "step_name");
          lua_pushstring(L, s.name.c_str());
          lua_rawset(L, -3);
          lua_pushliteral(L, "failed");
          if (trouble_.is_null()) lua_pushnil(L);
          else push_json(L, trouble_);
          lua_rawset(L, -3);
        }
        lua_settop(L, 0);
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
        push_params(L, params, specs);
        lua_call(L, 1, 0);
      },
      &error, &kind);
  sandbox_->in_step = false;
  StepOutcome out;
  std::string killed = sandbox_->killed();
  // A replay ends an interrupted original's step the same way (the dispatcher raises Interrupted).
  bool interrupted = sandbox_->interrupted() || interrupt_requested() || killed == "interrupted";
  if (capped && !killed.empty() && killed.rfind(overran, 0) == 0 &&
      std::chrono::steady_clock::now() >= deadline)
    killed = "step '" + s.name + "' was stopped: the test case's time limit passed";
  if (ok && killed.empty() && std::chrono::steady_clock::now() > deadline) {
    // The last effect returned, but late: the step did not hold its deadline.
    ok = false;
    killed = overran;
  }
  if (ok && killed.empty()) {
    out.outcome = "succeeded";
    out.used_unknowns = sandbox_->unknown_touched > 0;
    out.why = sandbox_->unknown_reason;
  } else {
    out.error = !killed.empty()               ? killed
                : sandbox_->over_limit()      ? sandbox_->memory_message()
                                              : error;
    out.outcome = interrupted ? "interrupted" : "failed";
    // A stopped step (deadline, Ctrl-C, memory) is not the runbook's mistake.
    out.bug = !interrupted && killed.empty() && !sandbox_->over_limit() && kind == ErrorKind::Bug;
    // A rehearsal's step that failed after using a value it could not know (an HTTP answer
    // after a planned restart) has not shown that the live run fails: it is checked live only.
    if (!interrupted && d.options().mode == Mode::DryRun &&
        ((killed.empty() && sandbox_->unknown_touched > 0) ||
         (!sandbox_->unknown_loop.empty() && killed == sandbox_->unknown_loop))) {
      out.outcome = "live-only";
      out.why = sandbox_->unknown_loop.empty() ? sandbox_->unknown_reason : sandbox_->unknown_loop;
      out.bug = false;
    }
  }
  lua_settop(L, 0);
  sandbox_->disarm();
  d.set_step(idx, attempt, SteadyTime::max());
  // Nothing the runbook wrote runs here: the sandbox refuses __gc finalizers.
  lua_gc(L, LUA_GCCOLLECT);
  return out;
}

void Runbook::run_steps(Dispatcher& d, const json& params, RunRecord& run, int first) {
  sandbox_->dispatcher = &d;
  // `run` describes this run to the runbook (read-only data, no effects). Raw: the runbook may
  // have given _G a __newindex of its own.
  std::string setup_error;
  bool ready = false;
  try {
    ready = sandbox_->protect(
                [&](lua_State* L) {
                  lua_pushglobaltable(L);
                  lua_pushliteral(L, "run");
                  json info = d.run_info();
                  info["name"] = decl_.name;
                  info["version"] = decl_.version;
                  info["steps"] = decl_.steps.size();
                  info["step"] = 0;
                  info["step_name"] = "";
                  int64_t started = d.options().seen_started_ms ? d.options().seen_started_ms : run.started_ms;
                  info["started"] = static_cast<double>(started) / 1000.0;
                  push_json(L, info);
                  lua_rawset(L, -3);
                  lua_pop(L, 1);
                },
                &setup_error) &&
            sandbox_->seed(run.seed, &setup_error);
  } catch (const LuaPanic& e) {
    setup_error = e.what();
  }
  if (!ready) {
    run.outcome = "failed";
    run.exit_code = kExitFailed;
    run.error = "the run could not start: " + setup_error;
    return;
  }

  Reporter* rep = d.reporter();
  Journal* j = d.journal();
  int total = static_cast<int>(decl_.steps.size());
  std::string failed_error, bug_error;
  bool failed = false, interrupted = false, halted = false;
  // After the first interrupt the remaining `always` steps still run, each under its own
  // deadline; a further one (during them, or before the interrupted step stopped) skips them.
  bool skip_cleanup = false;
  int failed_step = 0, bug_step = 0;
  json cleanup = json::array();  // the always steps run (or skipped) after the run went wrong
  auto always_after = [&](int i) {
    int n = 0;
    for (int k = i + 1; k <= total; ++k) n += decl_.steps[static_cast<size_t>(k - 1)].always;
    return n;
  };
  auto steps_word = [](int n) {
    return std::to_string(n) + (n == 1 ? " cleanup step" : " cleanup steps");
  };
  auto on_interrupt = [&](int i, const std::string& error) {
    int pending = interrupt_count().load() - interrupt_acknowledged().load();
    acknowledge_interrupt();
    int n = always_after(i);
    if (!interrupted) {
      interrupted = true;
      failed_error = error;
      failed_step = i;
      if (pending > 1) skip_cleanup = true;  // Ctrl-C twice before the step stopped
      if (n > 0)
        d.log("warn", skip_cleanup ? "interrupted twice: skipping the " + steps_word(n) +
                                         " (always = true)"
                                   : "interrupted: running " + steps_word(n) +
                                         " (always = true); Ctrl-C again to skip them");
    } else if (!skip_cleanup) {
      skip_cleanup = true;
      if (n > 0)
        d.log("warn", "interrupted again: skipping the remaining " + steps_word(n) +
                          " (always = true)");
    }
  };
  for (int i = first; i <= total; ++i) {
    const StepDecl s = decl_.steps[static_cast<size_t>(i - 1)];  // a copy: nothing may move it
    bool after_trouble = failed || interrupted;
    std::string last_outcome;
    if (halted || (failed && !s.always) || (interrupted && (!s.always || skip_cleanup))) {
      if (rep) rep->step_end(i, s.name, "skipped", "", Millis(0));
      if (s.always && after_trouble && !halted)
        cleanup.push_back(json{{"step", i}, {"name", s.name}, {"outcome", "skipped"}});
      continue;
    }
    for (int attempt = 1;; ++attempt) {
      if (rep) rep->step_begin(i, total, s.name, attempt);
      StepRecord sr{run.id, i, attempt, s.name, now_epoch_ms(), 0, "running", ""};
      if (j && d.options().mode != Mode::Replay) j->step_begun(sr);
      auto t0 = std::chrono::steady_clock::now();
      StepOutcome o;
      trouble_ = nullptr;
      if ((failed || interrupted) && failed_step >= 1 && failed_step <= total)
        trouble_ = json{{"step", failed_step},
                        {"step_name", decl_.steps[static_cast<size_t>(failed_step - 1)].name},
                        {"error", failed_error},
                        {"interrupted", interrupted}};
      try {
        o = run_step(d, s, i, params, attempt);
      } catch (const LuaPanic& e) {
        // The last line, not the fix: the interpreter is not used again, and no step runs.
        o = StepOutcome{"failed", e.what(), "", false, false};
        halted = true;
      }
      sr.ended_ms = now_epoch_ms();
      sr.outcome = o.outcome;
      sr.error = d.redactor().text(o.error);
      last_outcome = o.outcome;
      if (j && d.options().mode != Mode::Replay) j->step_ended(sr);
      if (rep)
        rep->step_end(i, s.name, o.outcome, sr.error,
                      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0));
      if (o.outcome == "live-only") {
        d.add_checked_live_only({{"step", i}, {"step_name", s.name}, {"why", d.redactor().text(o.why)},
                                 {"error", sr.error}, {"what", "step"}});
        d.log("warn", "step " + std::to_string(i) + " '" + s.name +
                          "' is checked live only: it used a value the rehearsal cannot know (" +
                          d.redactor().text(o.why) + ") and stopped at: " + sr.error);
        break;
      }
      if (o.outcome == "succeeded") {
        // It went through, but what it checked of unknowns it could not really check.
        if (d.options().mode == Mode::DryRun && o.used_unknowns)
          d.add_checked_live_only({{"step", i}, {"step_name", s.name}, {"why", d.redactor().text(o.why)},
                                   {"what", "step-used"}});
        break;
      }
      if (o.outcome == "interrupted") {
        on_interrupt(i, sr.error);
        break;
      }
      if (o.bug && !bug_step) {
        bug_step = i;
        bug_error = sr.error;
      }
      // A divergence or a change in doubt stops the whole run: not even `always` steps run,
      // since the world is not where the journal says and the operator must look first.
      bool diverged = halted || !d.divergence().is_null() || !d.in_doubt_stop().is_null() ||
                      d.crashed();
      if (diverged) halted = true;
      // A bug is not retried: it would fail the same way.
      if (attempt <= s.retries && !diverged && !o.bug) {
        Millis delay = s.retry_delay * (1 << std::min(attempt - 1, 6));
        d.log("warn", "step " + std::to_string(i) + " failed (attempt " + std::to_string(attempt) +
                          " of " + std::to_string(s.retries + 1) + "); retrying in " +
                          format_duration(delay));
        if (!d.pause(delay)) {
          on_interrupt(i, "interrupted");
          break;
        }
        continue;
      }
      if (!failed && !interrupted) {  // the first thing that went wrong is the run's error
        failed_error = sr.error;
        failed_step = i;
      }
      failed = true;
      break;
    }
    if (after_trouble)  // the outcome of its last attempt, as in its step row
      cleanup.push_back(json{{"step", i}, {"name", s.name}, {"outcome", last_outcome}});
  }
  if (!run.modules.is_object()) run.modules = json::object();
  for (const auto& [name, sha] : sandbox_->modules()) run.modules[name] = sha;
  if (!cleanup.empty()) run.extra["cleanup"] = cleanup;
  auto step_name = [&](int i) { return decl_.steps[static_cast<size_t>(i - 1)].name; };
  if (!d.in_doubt_stop().is_null()) {
    // Resume stopped at a change in doubt: the operator must choose --assume-done or --redo.
    run.outcome = "failed";
    run.exit_code = kExitInDoubt;
    run.error = "step " + std::to_string(failed_step) + " '" + step_name(failed_step) +
                "' stopped at a change in doubt: " + failed_error;
  } else if (interrupted) {
    run.outcome = "interrupted";
    run.exit_code = kExitInterrupted;
    run.error = "interrupted at step " + std::to_string(failed_step) + ": " + failed_error;
  } else if (bug_step) {
    run.outcome = "error";
    run.exit_code = kExitUsage;
    run.error = "step " + std::to_string(bug_step) + " '" + step_name(bug_step) +
                "': a bug in the runbook: " + bug_error;
    if (failed_step && failed_step != bug_step)
      run.error += " (after step " + std::to_string(failed_step) + " '" + step_name(failed_step) +
                   "' failed: " + failed_error + ")";
  } else if (failed) {
    run.outcome = "failed";
    run.exit_code = kExitFailed;
    run.error = "step " + std::to_string(failed_step) + " '" + step_name(failed_step) +
                "' failed: " + failed_error;
  } else {
    run.outcome = "succeeded";
    run.exit_code = kExitOk;
  }
}

std::string exit_kind(int code, bool started) {
  switch (code) {
    case kExitOk: return "succeeded";
    case kExitFailed: return "failed";
    case kExitUsage: return started ? "bug" : "usage";
    case kExitInDoubt: return "in_doubt";
    case kExitRefused: return "refused";
    case kExitInterrupted: return "interrupted";
    default: return "failed";
  }
}

namespace {

std::string hostname() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// Gives the run's lock back however execute() leaves (an exception included); the normal end
// releases it explicitly, after the journal says the run ended.
struct HeldLock {
  RunLocks* locks = nullptr;
  std::string key;
  int64_t run_id = 0;
  void release() {
    if (!locks) return;
    RunLocks* l = std::exchange(locks, nullptr);
    try {
      l->release(key, run_id);
    } catch (const std::exception&) {
      // The row stays; it is stale once the run has ended in the journal or its process is gone.
    }
  }
  HeldLock() = default;
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;
  ~HeldLock() { release(); }
};

json holder_json(const LockHolder& h) {
  return json{{"run_id", h.run_id}, {"runbook", h.runbook}, {"user", h.user},
              {"host", h.host},     {"pid", h.pid},         {"since_ms", h.since_ms}};
}

std::string username() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const char* u = std::getenv("LOGNAME"); u && *u) return u;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) return pw->pw_name;
  return std::to_string(::getuid());
}

}  // namespace

ExecResult execute(const ExecRequest& req, Journal* journal, Reporter* reporter,
                   const Registry& registry) {
  ExecResult res;
  RunRecord run;
  run.file = req.file;
  run.mode = mode_name(req.options.mode);
  run.offline = req.options.offline;
  run.host = hostname();
  run.user = username();
  std::error_code ec;
  run.cwd = fs::current_path(ec).string();
  if (req.resume) run.mode = "resume";
  run.parent_id = req.parent_id;
  run.pid = static_cast<int64_t>(::getpid());
  run.started_ms = now_epoch_ms();
  run.seed = req.seed ? req.seed : static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
  run.extra = req.extra;

  Runbook book(registry, req.memory_limit);
  json params;
  std::vector<std::string> secrets;
  auto fail_usage = [&](const std::string& msg, int code = kExitUsage) {
    // Bad input still leaves a trace: a run whose outcome is "error" (or "refused").
    run.outcome = code == kExitRefused ? "refused" : "error";
    run.error = msg;
    run.exit_code = code;
    run.extra["kind"] = exit_kind(code, false);
    run.ended_ms = now_epoch_ms();
    if (run.runbook.empty()) run.runbook = fs::path(req.file).stem().string();
    if (run.version.empty()) run.version = "?";
    run.plan_id.clear();
    // A refused resume leaves the journal as it was: the run it would continue is still the
    // one to resume.
    if (journal && req.options.mode != Mode::Replay && !req.resume) {
      journal->begin_run(run);
      journal->update_run(run);
    }
    res.exit_code = code;
    res.run_id = run.id;
    res.outcome = run.outcome;
    res.error = msg;
    return res;
  };
  try {
    book.load(req.file);
  } catch (const UsageError& e) {
    std::string bytes, unread;
    if (read_source_file(req.file, &bytes, &unread)) run.sha256 = sha256_hex(bytes);
    return fail_usage(e.what());
  }
  const RunbookDecl& d = book.decl();
  run.runbook = d.name;
  run.version = d.version;
  run.file = d.abspath;
  run.sha256 = d.sha256;
  run.steps_total = static_cast<int>(d.steps.size());
  // Modules required while declaring are known now (a crash must not lose them); those
  // required inside steps are added at the end.
  for (const auto& [name, sha] : book.sandbox().modules()) run.modules[name] = sha;
  if (req.source_info) req.source_info(run);
  if (!req.expect_sha256.empty() && req.expect_sha256 != d.sha256)
    return fail_usage(req.file + " has changed since the run (sha256 " +
                      req.expect_sha256.substr(0, 12) + " then, " + d.sha256.substr(0, 12) +
                      " now)");
  if (req.expect_modules.is_object())
    for (const auto& [name, sha] : book.sandbox().modules())
      if (req.expect_modules.contains(name) && req.expect_modules[name] != sha)
        return fail_usage("module '" + name + "' required by " + req.file +
                          " has changed since the run (sha256 " +
                          req.expect_modules[name].get<std::string>().substr(0, 12) + " then, " +
                          sha.substr(0, 12) + " now)");
  json param_changes = json::object();
  // The parameters the run is given: the command line's, then what param_source answers for
  // the declared ones left out (file, environment, prompt; see ExecRequest::param_source).
  std::map<std::string, std::string> given_params = req.params;
  if (req.warn_argv_secrets)
    for (const auto& p : d.params)
      if (p.secret && req.params.count(p.name)) {
        std::string up;
        for (char ch : p.name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        std::fprintf(stderr,
                     "runbook: warning: secret parameter '%s' given with -p: every user of this "
                     "machine can read a command line; use --param-file FILE or RUNBOOK_PARAM_%s\n",
                     p.name.c_str(), up.c_str());
      }
  if (req.param_source && !(req.typed_params && !req.resume && !req.reuse_params)) {
    bool reusing = req.typed_params && (req.resume || req.reuse_params);
    for (const auto& p : d.params) {
      if (given_params.count(p.name)) continue;
      // A password inside an ordinary parameter (a URL's, a DSN's password=) was journaled
      // masked: it is asked for again as a secret is.
      bool masked = reusing && !p.secret && req.typed_params->is_object() &&
                    req.typed_params->contains(p.name) && (*req.typed_params)[p.name].is_string() &&
                    holds_masked_password((*req.typed_params)[p.name].get<std::string>());
      if (reusing && !p.secret && !masked) continue;  // the original's value holds; not a change
      bool needed = reusing ? true : (p.required && p.def.is_null());
      if (reusing && req.secrets_given && !p.def.is_null() &&
          std::find(req.secrets_given->begin(), req.secrets_given->end(), p.name) ==
              req.secrets_given->end())
        needed = false;  // the original took the default
      try {
        if (auto v = req.param_source(p.name, p.secret || masked, needed)) given_params[p.name] = *v;
      } catch (const UsageError& e) {
        return fail_usage(e.what());
      }
    }
  }
  try {
    if (req.typed_params && (req.resume || req.reuse_params)) {
      params = book.override_params(*req.typed_params, given_params, req.secrets_given, &secrets,
                                    &param_changes);
      json given = json::array();
      for (const auto& p : d.params)
        if (p.secret && (given_params.count(p.name) ||
                         (req.secrets_given &&
                          std::find(req.secrets_given->begin(), req.secrets_given->end(),
                                    p.name) != req.secrets_given->end())))
          given.push_back(p.name);
      run.extra["secrets_given"] = given;
      if (!param_changes.empty() && !req.allow_param_change) {
        // No password in the message: the run's secrets and those inside any parameter.
        Redactor hide;
        for (const auto& s : secrets) {
          hide.add(s);
          for (const auto& i : embedded_secrets(s)) hide.add(i);
        }
        for (const auto& [name, value] : params.items())
          if (value.is_string())
            for (const auto& s : embedded_secrets(value.get<std::string>())) hide.add(s);
        param_changes = hide.value(param_changes);
        std::string list;
        for (auto it = param_changes.begin(); it != param_changes.end(); ++it)
          list += "\n  " + it.key() + ": " + it.value()["from"].dump() + " then, " +
                  it.value()["to"].dump() + " now";
        res.param_changes = param_changes;
        return fail_usage(std::string("the parameters differ from ") +
                          (req.resume ? "the run being resumed:" : "the plan's:") + list +
                          (req.resume ? "\n  (--allow-param-change resumes with them anyway; the "
                                        "change is journaled)"
                                      : "\n  (make a new plan with these parameters)"));
      }
    } else if (req.typed_params) {
      params = *req.typed_params;
      for (const auto& p : d.params)
        if (p.secret && params.contains(p.name) && params[p.name].is_string())
          secrets.push_back(params[p.name].get<std::string>());
    } else {
      params = book.resolve_params(given_params, &secrets);
      // So that a resume knows which secrets came from the command line and must be given
      // again, and which the declared default supplied.
      json given = json::array();
      for (const auto& p : d.params)
        if (p.secret && given_params.count(p.name)) given.push_back(p.name);
      run.extra["secrets_given"] = given;
    }
  } catch (const UsageError& e) {
    return fail_usage(e.what());
  }

  RunOptions opts = req.options;
  if (opts.artifacts_root.empty())  // config.toml's artifacts, or RUNBOOK_ARTIFACTS
    if (auto a = setting("artifacts")) opts.artifacts_root = *a;
  if (opts.artifacts_root.empty() && journal)
    opts.artifacts_root = (fs::path(journal->path()).parent_path() / "artifacts").string();
  Dispatcher disp(journal, reporter, opts);
  // A secret with a structure (a URL with a password, a key=value DSN) keeps its host visible:
  // only its password is a secret. Without one, the whole value is.
  for (const auto& s : secrets) {
    auto inner = embedded_secrets(s);
    if (inner.empty()) disp.redactor().add(s);
    for (const auto& i : inner) disp.redactor().add(i);
  }
  // A password inside an ordinary parameter (-p url=redis://:pw@host, a DSN) is a secret too,
  // whether or not the runbook declared the parameter secret.
  for (const auto& [name, value] : params.items())
    if (value.is_string())
      for (const auto& s : embedded_secrets(value.get<std::string>())) disp.redactor().add(s);
  run.params = params;
  for (const auto& p : d.params)
    if (p.secret && run.params.contains(p.name)) {
      const json& v = run.params[p.name];
      bool structured = v.is_string() && !embedded_secrets(v.get<std::string>()).empty();
      if (!structured) run.params[p.name] = "***";  // else: the redactor masks the password alone
    }
  run.params = disp.redactor().value(run.params);
  run.outcome = "running";
  run.artifacts = opts.artifacts_root;
  if (!param_changes.empty()) run.extra["param_changes"] = disp.redactor().value(param_changes);
  if (opts.mode == Mode::Live && !req.resume) run.plan_id = req.plan_id;
  bool claimed = false;
  if (journal && opts.mode != Mode::Replay) {
    // A plan executes at most once: refused (exit 4, no row) when another run has it.
    auto refuse_plan = [&](const std::string& msg) {
      res.exit_code = kExitRefused;
      res.outcome = "refused";
      res.error = msg;
      return res;
    };
    try {
      if (!run.plan_id.empty() && req.claim_run_id) {
        run.id = req.claim_run_id;
        if (!journal->claim_reserved(run))
          return refuse_plan("plan " + run.plan_id + " is being executed or was executed by run #" +
                             std::to_string(req.claim_run_id) + " (started by another process)");
        claimed = true;
      } else {
        journal->begin_run(run);
      }
    } catch (const JournalError&) {
      throw;
    } catch (const std::runtime_error& e) {
      if (run.plan_id.empty()) throw;
      return refuse_plan(e.what());
    }
  }
  if (run.id) {
    run.artifacts = opts.artifacts_root + "/" + std::to_string(run.id);
    if (journal) journal->set_artifacts(run.id, run.artifacts);
  }
  disp.set_run_id(run.id);
  if (!req.recorded.empty() || opts.mode == Mode::Replay)
    disp.answer_from(req.recorded, req.answer_through);
  disp.recorded_run(req.recorded_steps, req.recorded_outcome, req.live_attempt);
  if (!param_changes.empty()) {
    std::string list;
    for (auto it = param_changes.begin(); it != param_changes.end(); ++it)
      list += (list.empty() ? "" : ", ") + it.key() + " " + it.value()["from"].dump() + " → " +
              it.value()["to"].dump();
    disp.log("warn", "resumed with changed parameters (--allow-param-change): " + list);
  }

  // One live run per target: the lock is taken before step 1 (so before any change) and given
  // back when the run ends. A resume locks what the original did: the key from its parameters.
  HeldLock held;
  std::string takeover_note;
  if (opts.mode == Mode::Live && req.locks && run.id) {
    json key_params = params;
    if (req.resume && req.typed_params && req.typed_params->is_object())
      for (const auto& [k, v] : req.typed_params->items()) key_params[k] = v;
    LockHolder me;
    me.key = lock_key(d, key_params);
    me.run_id = run.id;
    me.runbook = d.name;
    me.user = run.user;
    me.host = run.host;
    me.pid = run.pid;
    me.start_ticks = req.start_ticks;
    auto until = std::chrono::steady_clock::now() + req.wait_lock;
    LockResult lr;
    bool told = false, stopped = false;
    std::string failure;
    try {
      for (;;) {
        me.since_ms = now_epoch_ms();
        lr = req.locks->acquire(me);
        if (lr.acquired || std::chrono::steady_clock::now() >= until) break;
        if (reporter && !told)
          reporter->log("info", "lock \"" + me.key + "\" is held by " +
                                    describe_holder(*lr.held_by) + "; waiting up to " +
                                    format_duration(req.wait_lock));
        told = true;
        // Poll, a little at a time so that Ctrl-C ends the wait at once.
        for (int i = 0; i < 10 && std::chrono::steady_clock::now() < until; ++i) {
          if (interrupt_requested()) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        if (interrupt_requested()) {
          stopped = true;
          break;
        }
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    run.extra["lock"] = me.key;
    if (!lr.acquired) {
      run.ended_ms = now_epoch_ms();
      if (!failure.empty()) {
        // Fail closed: without the lock nothing runs.
        run.outcome = "failed";
        run.exit_code = kExitFailed;
        run.error = "cannot take the lock \"" + me.key + "\": " + failure;
        res.lock = json{{"key", me.key}};
      } else {
        std::string by = lr.held_by ? describe_holder(*lr.held_by) : "another run";
        run.outcome = stopped ? "interrupted" : "refused";
        run.exit_code = stopped ? kExitInterrupted : kExitRefused;
        run.error = "lock \"" + me.key + "\" is held by " + by +
                    (stopped ? " (interrupted while waiting)"
                     : told  ? " (waited " + format_duration(req.wait_lock) + ")"
                             : "");
        res.lock = json{{"key", me.key},
                        {"holder", lr.held_by ? holder_json(*lr.held_by) : json(nullptr)}};
        run.extra["lock_holder"] = res.lock["holder"];
      }
      run.extra["kind"] = exit_kind(run.exit_code);
      if (journal) {
        // A plan refused at the lock has not been executed: it may execute later (under the
        // run id reserved for it, when it had one: reserved again, the refusal in its extra).
        if (claimed) {
          run.extra["refused_at_lock"] = {{"error", run.error}, {"at_ms", run.ended_ms}};
          journal->unclaim(run);
        } else {
          journal->update_run(run);
          if (!run.plan_id.empty()) journal->release_plan(run.id);
        }
        journal->flush();
      }
      res.exit_code = run.exit_code;
      res.run_id = run.id;
      res.outcome = run.outcome;
      res.error = run.error;
      return res;
    }
    held.locks = req.locks;
    held.key = me.key;
    held.run_id = run.id;
    if (lr.taken_over) {
      run.extra["lock_taken_over"] = holder_json(*lr.taken_over);
      takeover_note = "lock \"" + me.key + "\" was held by " + describe_holder(*lr.taken_over) +
                      ", which is stale (" + lr.stale_reason + "): taken over";
    }
  }

  // Only a resume that goes ahead continues the original (one refused at the lock does not).
  if (journal && req.resume && req.parent_id) journal->mark_resumed(req.parent_id, run.id);

  std::vector<std::string> names;
  for (const auto& s : d.steps) names.push_back(s.name);
  if (reporter) reporter->run_begin(run, names);
  if (!takeover_note.empty()) disp.log("warn", takeover_note);
  book.run_steps(disp, params, run, 1);
  run.ended_ms = now_epoch_ms();
  // What the rehearsal could not check (unknowns used by probes, changes and steps).
  if (opts.mode == Mode::DryRun && !disp.checked_live_only().empty())
    run.extra["checked_live_only"] = disp.redactor().value(disp.checked_live_only());
  run.extra["kind"] = exit_kind(run.exit_code);
  run.error = disp.redactor().text(run.error);
  if (opts.mode == Mode::Replay && disp.divergence().is_null()) {
    // The replay may also depart by doing less than the original, or ending otherwise.
    bool complete = req.recorded_outcome == "succeeded" || req.recorded_outcome == "failed";
    std::string then = req.recorded_outcome == "running" || req.recorded_outcome == "crashed"
                           ? "interrupted"
                           : req.recorded_outcome;
    if (complete && disp.effects_called() < disp.recorded_count()) {
      const EffectRecord& next = req.recorded[static_cast<size_t>(disp.effects_called())];
      disp.set_divergence(json{{"reason", "missing"},
                               {"effect", next.seq},
                               {"step", next.step_idx},
                               {"expected", {{"name", next.name}, {"args", next.args},
                                             {"site", next.site}, {"step", next.step_idx}}},
                               {"actual", nullptr}});
    } else if (!req.recorded_outcome.empty() && then != run.outcome) {
      disp.set_divergence(json{{"reason", "outcome"},
                               {"effect", disp.effects_called()},
                               {"expected", {{"outcome", req.recorded_outcome}}},
                               {"actual", {{"outcome", run.outcome}, {"error", run.error}}}});
    }
  }
  if (journal && opts.mode != Mode::Replay) {
    journal->update_run(run);
    journal->flush();
  }
  held.release();
  if (reporter) reporter->run_end(run);
  res.started = true;
  res.exit_code = run.exit_code;
  res.run_id = run.id;
  res.outcome = run.outcome;
  res.error = run.error;
  res.divergence = disp.divergence();
  res.in_doubt = disp.in_doubt_stop();
  res.param_changes = param_changes;
  res.effects = disp.effects_called();
  res.answered = disp.answered();
  return res;
}

}  // namespace rb
