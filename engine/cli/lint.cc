#include "cli/lint.h"

#include <lua.hpp>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "cli/api_globals.h"
#include "core/error.h"
#include "dispatch/registry.h"
#include "lua/runbook.h"
#include "os/files.h"
#include "os/process.h"

namespace fs = std::filesystem;

namespace rb::cli {
namespace {

constexpr uintmax_t kMaxFile = 8u << 20;      // as a runbook file
constexpr Millis kToolTimeout{30'000};        // per tool per file
constexpr const char* kInstall = "install it with: apt-get install lua-check";

// \ddd followed by a digit would read on: always three digits.
std::string lua_str(const std::string& s) {
  std::string o = "\"";
  char buf[8];
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 32 || c >= 127) {
      std::snprintf(buf, sizeof buf, "\\%03u", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

// The globals a runbook's sandbox offers, as they are after the prelude loaded: name -> the
// string keys of a table (nullopt-like empty flag for a non-table).
struct Globals {
  std::map<std::string, std::vector<std::string>> tables;
  std::set<std::string> plain;
};

Globals sandbox_globals() {
  fs::path dir = fs::temp_directory_path() / ("runbook-lint-probe-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path f = dir / "probe.lua";
  os::atomic_write(f.string(), "runbook{ name = \"lint\", version = \"0.0.0\" }\nstep(\"x\", function() end)\n");
  Globals g;
  {
    Runbook book(builtin_registry());
    book.load(f.string());
    lua_State* L = book.sandbox().L();
    lua_pushglobaltable(L);
    lua_pushnil(L);
    int n = 0;
    while (lua_next(L, -2) != 0 && ++n < 10000) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string name = lua_tostring(L, -2);
        if (lua_type(L, -1) == LUA_TTABLE) {
          auto& fields = g.tables[name];
          lua_pushnil(L);
          int m = 0;
          while (lua_next(L, -2) != 0 && ++m < 10000) {
            if (lua_type(L, -2) == LUA_TSTRING) fields.push_back(lua_tostring(L, -2));
            lua_pop(L, 1);
          }
          std::sort(fields.begin(), fields.end());
        } else {
          g.plain.insert(name);
        }
      }
      lua_pop(L, 1);
    }
    lua_settop(L, 0);
  }
  fs::remove_all(dir, ec);
  // `run` describes the run; Runbook::run_steps sets it when a run starts, so a loaded runbook
  // does not have it yet (fields: Dispatcher::run_info and runbook.cc's additions).
  // Their list is the reference's (cli/api_globals.cc), which a test checks against a live run.
  auto& run_fields = g.tables["run"];
  run_fields.clear();
  for (const auto& e : builtin_docs())
    if (e.kind == "value" && e.name.rfind("run.", 0) == 0) run_fields.push_back(e.name.substr(4));
  std::sort(run_fields.begin(), run_fields.end());
  // Lua's own names the sandbox keeps under _G.
  g.tables.erase("_G");
  g.plain.insert("_G");
  return g;
}

std::string lua_list(const std::vector<std::string>& v) {
  std::string o = "{";
  for (const auto& s : v) o += lua_str(s) + ",";
  return o + "}";
}

// The data analyse.lua reads: the registry and the sandbox's globals.
std::string analyser_data(const Globals& g) {
  std::ostringstream o;
  o << "return {\nprimitives = {\n";
  for (const Effect* e : builtin_registry().all()) {
    std::vector<std::string> args, results;
    for (const auto& a : e->args) args.push_back(a.name);
    bool map = false;
    for (const auto& r : e->results) {
      if (r.name == "*") map = true;
      results.push_back(r.name);
    }
    o << "[" << lua_str(e->name) << "] = { kind = " << lua_str(e->kind_for ? "any" : kind_name(e->kind))
      << ", args = " << lua_list(args) << ", positional = " << lua_list(e->positional)
      << ", results = " << (results.empty() ? "false" : lua_list(results))
      << ", map = " << (map ? "true" : "false") << " },\n";
  }
  o << "},\nglobals = {\n";
  for (const auto& [name, fields] : g.tables) o << "[" << lua_str(name) << "] = " << lua_list(fields) << ",\n";
  for (const auto& name : g.plain) o << "[" << lua_str(name) << "] = false,\n";
  o << "},\n}\n";
  return o.str();
}

// luacheck's config: the std is exactly the sandbox's globals. Fields of global tables are the
// analyser's to check (with the nearest name), so luacheck allows other fields.
std::string luacheck_config(const Globals& g) {
  std::ostringstream o;
  o << "stds.runbook = { read_globals = {\n";
  for (const auto& [name, fields] : g.tables) {
    o << "  [" << lua_str(name) << "] = { other_fields = true, fields = {";
    for (const auto& f : fields) o << "[" << lua_str(f) << "] = { other_fields = true }, ";
    o << "} },\n";
  }
  for (const auto& name : g.plain) o << "  " << lua_str(name) << ",\n";
  o << "} }\n"
    << "std = \"runbook\"\n"
    << "max_line_length = false\n"
    << "unused_args = false\n"     // step(\"x\", function(p) ... ): p need not be used
    << "allow_defined_top = true\n"
    << "ignore = { \"6..\" }\n";   // whitespace
  return o.str();
}

std::string analyser_script() {
  if (const char* e = std::getenv("RUNBOOK_LINT_SCRIPT"); e && *e) return e;
  std::error_code ec;
  // An installed (or packaged, relocated) runbook's own first, then the source tree's.
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path p = exe.parent_path().parent_path() / "share/runbook/lint/analyse.lua";
    if (fs::is_regular_file(p, ec)) return p.string();
  }
#ifdef RUNBOOK_LINT_DIR
  if (fs::is_regular_file(std::string(RUNBOOK_LINT_DIR) + "/analyse.lua", ec))
    return std::string(RUNBOOK_LINT_DIR) + "/analyse.lua";
#endif
#ifdef RUNBOOK_LINT_INSTALLED
  return std::string(RUNBOOK_LINT_INSTALLED) + "/analyse.lua";
#else
  return "analyse.lua";
#endif
}

int to_int(const std::string& s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return 1;
  return std::max(1, std::stoi(s));
}

// luacheck --formatter plain --codes --ranges: "FILE:L:C1-C2: (W113) message".
void parse_luacheck(const std::string& file, const std::string& out, std::vector<LintFinding>* found) {
  std::istringstream in(out);
  std::string line;
  int n = 0;
  while (std::getline(in, line) && ++n < 10000) {
    if (line.rfind(file + ":", 0) != 0) continue;
    std::string rest = line.substr(file.size() + 1);
    auto c1 = rest.find(':');
    auto c2 = c1 == std::string::npos ? c1 : rest.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    LintFinding f;
    f.file = file;
    f.line = to_int(rest.substr(0, c1));
    std::string cols = rest.substr(c1 + 1, c2 - c1 - 1);
    f.col = to_int(cols.substr(0, cols.find('-')));
    std::string msg = rest.substr(c2 + 1);
    if (!msg.empty() && msg[0] == ' ') msg.erase(0, 1);
    if (msg.size() > 2 && msg[0] == '(') {
      auto close = msg.find(')');
      if (close != std::string::npos) {
        f.code = msg.substr(1, close - 1);
        msg = msg.substr(std::min(msg.size(), close + 2));
      }
    }
    f.message = msg;
    // A syntax error, or reading a global the sandbox does not have (a runtime error there).
    bool error = f.code.empty() || f.code[0] == 'E' || f.code == "W113";
    if (f.code == "W113") {
      auto q = msg.find('\'');
      std::string name = q == std::string::npos ? "" : msg.substr(q);
      f.message = "undefined global " + name;
    }
    f.severity = error ? "error" : "warning";
    found->push_back(f);
  }
}

void parse_analyser(const std::string& file, const std::string& out, std::vector<LintFinding>* found) {
  std::istringstream in(out);
  std::string line;
  int n = 0;
  while (std::getline(in, line) && ++n < 10000) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (int i = 0; i < 4; ++i) {
      auto tab = line.find('\t', start);
      if (tab == std::string::npos) break;
      parts.push_back(line.substr(start, tab - start));
      start = tab + 1;
    }
    if (parts.size() != 4) continue;
    LintFinding f;
    f.file = file;
    f.line = to_int(parts[0]);
    f.col = to_int(parts[1]);
    f.severity = parts[2] == "error" ? "error" : "warning";
    f.code = parts[3];
    f.message = line.substr(start);
    found->push_back(f);
  }
}

os::ProcessResult run_tool(std::vector<std::string> argv) {
  os::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = kToolTimeout;
  spec.max_output = 2 << 20;
  return os::run_process(spec);
}

}  // namespace

std::string format_finding(const LintFinding& f) {
  return f.file + ":" + std::to_string(f.line) + ":" + std::to_string(f.col) + ": " + f.severity +
         ": " + f.message + (f.code.empty() ? "" : " [" + f.code + "]");
}

std::vector<LintFinding> lint_files(const std::vector<std::string>& files) {
  std::string luacheck = os::which("luacheck"), lua = os::which("lua5.1");
  if (luacheck.empty()) throw UsageError("lint needs luacheck, which is not on PATH: " + std::string(kInstall));
  if (lua.empty()) throw UsageError("lint needs lua5.1 (it runs luacheck's parser), which is not on PATH: " + std::string(kInstall));
  std::string script = analyser_script();
  std::error_code ec;
  if (!fs::is_regular_file(script, ec))
    throw UsageError("lint's analyser " + script + " is missing (set RUNBOOK_LINT_SCRIPT, or reinstall runbook)");

  Globals g = sandbox_globals();
  std::string tmpl = (fs::temp_directory_path() / "runbook-lint-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw UsageError("lint: cannot make a temporary directory");
  fs::path dir = buf.data();
  std::string data = (dir / "registry.lua").string(), rc = (dir / "luacheckrc.lua").string();
  os::atomic_write(data, analyser_data(g));
  os::atomic_write(rc, luacheck_config(g));

  std::vector<LintFinding> all;
  for (const auto& file : files) {
    std::vector<LintFinding> found;
    struct stat st;
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      all.push_back({file, 1, 1, "error", "", "not a regular file"});
      continue;
    }
    if (static_cast<uintmax_t>(st.st_size) > kMaxFile) {
      all.push_back({file, 1, 1, "error", "", "larger than 8 MiB"});
      continue;
    }
    auto lc = run_tool({luacheck, "--config", rc, "--formatter", "plain", "--codes", "--ranges",
                        "--no-cache", "--", file});
    if (!lc.spawn_error.empty()) {
      fs::remove_all(dir, ec);
      throw UsageError("lint: cannot run luacheck: " + lc.spawn_error + " (" + kInstall + ")");
    }
    if (lc.timed_out) found.push_back({file, 1, 1, "error", "", "luacheck took longer than 30s"});
    // 0: clean, 1: warnings, 2: errors; more is luacheck failing.
    else if (lc.code > 2) found.push_back({file, 1, 1, "error", "", "luacheck failed: " + lc.stderr_text.substr(0, 500)});
    parse_luacheck(file, lc.stdout_text, &found);

    auto an = run_tool({lua, script, data, file});
    if (an.timed_out) found.push_back({file, 1, 1, "error", "", "lint's analyser took longer than 30s"});
    else if (an.code != 0)
      found.push_back({file, 1, 1, "error", "", "lint's analyser failed: " + an.stderr_text.substr(0, 500) +
                                                    (an.stderr_text.find("luacheck") != std::string::npos ? std::string(" (") + kInstall + ")" : "")});
    parse_analyser(file, an.stdout_text, &found);
    std::stable_sort(found.begin(), found.end(), [](const LintFinding& a, const LintFinding& b) {
      return a.line != b.line ? a.line < b.line : a.col < b.col;
    });
    all.insert(all.end(), found.begin(), found.end());
  }
  // RUNBOOK_LINT_KEEP=1 keeps the generated registry.lua and luacheckrc.lua (to debug the std).
  if (const char* k = std::getenv("RUNBOOK_LINT_KEEP"); k && *k == '1')
    std::fprintf(stderr, "lint: kept %s\n", dir.c_str());
  else
    fs::remove_all(dir, ec);
  return all;
}

std::string luacheck_rc() {
  return "-- luacheck's configuration for runbooks: the std is the runbook sandbox's globals.\n"
         "-- Generated by `runbook init`; after an upgrade: runbook api --luacheckrc > .luacheckrc\n" +
         luacheck_config(sandbox_globals());
}

int cmd_lint(const std::vector<std::string>& files) {
  auto found = lint_files(files);
  bool error = false;
  for (const auto& f : found) {
    std::printf("%s\n", format_finding(f).c_str());
    error = error || f.severity == "error";
  }
  return error ? 1 : 0;
}

void print_lint_warnings(const std::string& file) {
  try {
    for (auto f : lint_files({file})) {
      f.severity = "warning";
      std::fprintf(stderr, "%s\n", format_finding(f).c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: warning: not linted: %s\n", file.c_str(), e.what());
  }
}

}  // namespace rb::cli
