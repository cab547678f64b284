// `runbook test`. A test file runs in a sandbox like a runbook's (no effects of its own), with
// `require "runbook.test"` (stdlib/runbook/test.lua) on top of the C functions here:
// case/run/resume/where. Each t.run is a fresh Runbook run through `execute()`, live but under
// test (RunOptions::fakes): the dispatcher asks the fakes below before anything would act, and
// answers the rest with planned results, so nothing touches the world. Every run of a case has
// its own journal in a temp directory removed when the case ends, so a simulated crash
// (crash_at) and t.resume go through the real journal and resume path.
#include "cli/json_out.h"
#include "cli/test_cmd.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "cli/history.h"
#include "core/duration.h"
#include "core/error.h"
#include "core/json.h"
#include "core/source_file.h"
#include "dispatch/registry.h"
#include "lua/convert.h"
#include "lua/modules.h"
#include "lua/runbook.h"
#include "lua/sandbox.h"

namespace rb::cli {
namespace {

namespace fs = std::filesystem;

const char* kHarnessKey = "runbook.test.harness";
const char* kFakeMetaKey = "runbook.test.fake_meta";
constexpr int64_t kCrashExit = 137;  // what a shell reports for a SIGKILLed process
constexpr size_t kMaxTestFiles = 10000;

struct FakeEntry {
  enum class Kind { Table, Function, Fail, Timeout } kind = Kind::Table;
  json value;
  int ref = LUA_NOREF;
  std::string message;
};

// The fakes of one t.run (and of the t.resume calls that reuse them).
class LuaFakes : public Fakes {
 public:
  LuaFakes(Sandbox* sb) : sb_(sb) {}
  ~LuaFakes() override {
    for (auto& [name, f] : entries)
      if (f.ref != LUA_NOREF) luaL_unref(sb_->L(), LUA_REGISTRYINDEX, f.ref);
  }
  LuaFakes(const LuaFakes&) = delete;
  LuaFakes& operator=(const LuaFakes&) = delete;

  std::optional<FakeAnswer> answer(const Effect& e, const json& args) override;
  bool crash_before(int64_t seq) override {
    if (crash_at > 0 && seq == crash_at) {
      crashed = true;
      return true;
    }
    return false;
  }

  std::map<std::string, FakeEntry> entries;
  lua_State* L = nullptr;  // the thread that called t.run / t.resume
  int64_t crash_at = 0;
  bool crashed = false;
  std::string fake_error;  // the first error a fake function raised

 private:
  Sandbox* sb_;
};

struct FakeCall {
  int ref = LUA_NOREF;
  const json* args = nullptr;
  FakeAnswer out;
  std::string error;  // the fake's value could not be a result
};

// Runs inside a protected call on the test file's interpreter.
int l_call_fake(lua_State* L) {
  auto* c = static_cast<FakeCall*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  luaL_checkstack(L, 8, "a fake");
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  push_json(L, *c->args);
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
    lua_getfield(L, LUA_REGISTRYINDEX, kFakeMetaKey);
    bool marker = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (marker) {
      lua_getfield(L, -1, "kind");
      std::string kind = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
      lua_getfield(L, -2, "message");
      c->out.message = lua_isstring(L, -1) ? lua_tostring(L, -1) : "failed (t.fail)";
      c->out.kind = kind == "timeout" ? FakeAnswer::Kind::Timeout : FakeAnswer::Kind::Fail;
      return 0;
    }
  }
  try {
    c->out.result = lua_to_json(L, -1, "the fake's result");
  } catch (const std::exception& e) {
    c->error = e.what();
  }
  return 0;
}

std::optional<FakeAnswer> LuaFakes::answer(const Effect& e, const json& args) {
  auto it = entries.find(e.name);
  if (it == entries.end()) return std::nullopt;
  const FakeEntry& f = it->second;
  FakeAnswer a;
  switch (f.kind) {
    case FakeEntry::Kind::Table: a.result = f.value; return a;
    case FakeEntry::Kind::Fail:
      a.kind = FakeAnswer::Kind::Fail;
      a.message = f.message;
      return a;
    case FakeEntry::Kind::Timeout: a.kind = FakeAnswer::Kind::Timeout; return a;
    case FakeEntry::Kind::Function: break;
  }
  if (!sb_->killed().empty()) throw DeadlineExceeded(sb_->killed());
  if (!lua_checkstack(L, 4)) throw EffectError("the fake cannot run: no room on the Lua stack");
  FakeCall call;
  call.ref = f.ref;
  call.args = &args;
  int top = lua_gettop(L);
  lua_pushcfunction(L, l_call_fake);
  lua_pushlightuserdata(L, &call);
  int rc = lua_pcall(L, 1, 0, 0);
  std::string err;
  if (rc != LUA_OK) {
    size_t n = 0;
    const char* s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : nullptr;
    err = s ? std::string(s, n) : std::string("an error value of type ") + luaL_typename(L, -1);
  }
  lua_settop(L, top);
  // The case's time is up (a fake that loops): the run stops as at a deadline.
  if (!sb_->killed().empty()) throw DeadlineExceeded(sb_->killed());
  if (rc != LUA_OK || !call.error.empty()) {
    std::string msg = "the fake for " + e.name + " " +
                      (rc != LUA_OK ? "raised an error: " + err : "returned " + call.error);
    if (fake_error.empty()) fake_error = msg;
    throw EffectError(msg);
  }
  return call.out;
}

struct Chain {
  std::unique_ptr<Journal> journal;
  std::string file;
  std::shared_ptr<LuaFakes> fakes;
};

struct CaseState {
  std::string tmp;  // made on the first t.run
  std::vector<Chain> chains;
  SteadyTime deadline = SteadyTime::max();
  ~CaseState() {
    chains.clear();  // journals closed before their directory goes
    if (!tmp.empty()) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
  }
};

struct Case {
  std::string name, site;
  int ref = LUA_NOREF;
};

struct Harness {
  Sandbox* sb = nullptr;
  std::string file, dir;
  std::string lib_source;  // "@" + stdlib/runbook/test.lua: frames where() skips
  std::vector<Case> cases;
  CaseState* current = nullptr;
  bool running_cases = false;
};

Harness* harness(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kHarnessKey);
  auto* h = static_cast<Harness*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return h;
}

// "file:line" of the innermost frame of the test file (or a module of it) outside
// stdlib/runbook/test.lua: where an assertion was called from.
std::string where_in_test(lua_State* L, const Harness& h) {
  lua_Debug ar;
  for (int level = 1; level < 200 && lua_getstack(L, level, &ar); ++level) {
    if (!lua_getinfo(L, "Sl", &ar)) break;
    if (ar.currentline <= 0 || !ar.source || ar.source[0] != '@') continue;
    if (h.lib_source == ar.source) continue;
    return std::string(ar.source + 1) + ":" + std::to_string(ar.currentline);
  }
  return h.file;
}

int l_where(lua_State* L) {
  std::string w = where_in_test(L, *harness(L));
  lua_pushlstring(L, w.data(), w.size());
  return 1;
}

int l_init(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, kFakeMetaKey);
  return 0;
}

int l_case(lua_State* L) {
  Harness* h = harness(L);
  const char* name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (h->running_cases) return luaL_error(L, "t.case: a case cannot declare cases (call t.case at the file's top level)");
  if (std::string(name).empty()) return luaL_error(L, "t.case: a case needs a name");
  Case c;
  c.name = name;
  c.site = where_in_test(L, *h);
  lua_pushvalue(L, 2);
  c.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->cases.push_back(std::move(c));
  return 0;
}

// Parameters as the command line would give them (-p name=value): the runbook types them.
std::map<std::string, std::string> params_of(lua_State* L, int idx, const char* fn) {
  std::map<std::string, std::string> out;
  if (lua_isnoneornil(L, idx)) return out;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: params must be a table", fn);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: params: names must be strings", fn);
    std::string name = lua_tostring(L, -2);
    std::string text;
    int ty = lua_type(L, -1);
    if (ty == LUA_TSTRING || ty == LUA_TNUMBER) {
      lua_pushvalue(L, -1);
      text = lua_tostring(L, -1);
      lua_pop(L, 1);
    } else if (ty == LUA_TBOOLEAN) {
      text = lua_toboolean(L, -1) ? "true" : "false";
    } else if (ty == LUA_TTABLE) {  // a list parameter: comma-separated, as on the command line
      lua_Integer n = luaL_len(L, -1);
      if (n > 10000) luaL_error(L, "%s: params: '%s' is too long a list", fn, name.c_str());
      for (lua_Integer i = 1; i <= n; ++i) {
        lua_geti(L, -1, i);
        if (!lua_isstring(L, -1)) luaL_error(L, "%s: params: '%s' must be a list of strings", fn, name.c_str());
        if (i > 1) text += ",";
        text += lua_tostring(L, -1);
        lua_pop(L, 1);
      }
    } else {
      luaL_error(L, "%s: params: '%s' must be a string, number, boolean or list", fn, name.c_str());
    }
    out[name] = text;
    lua_pop(L, 1);
  }
  return out;
}

std::shared_ptr<LuaFakes> fakes_of(lua_State* L, int idx, Harness* h, const char* fn) {
  auto fakes = std::make_shared<LuaFakes>(h->sb);
  if (lua_isnoneornil(L, idx)) return fakes;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: fakes must be a table", fn);
  idx = lua_absindex(L, idx);
  const Registry& reg = builtin_registry();
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: fakes: keys are effect names", fn);
    std::string name = lua_tostring(L, -2);
    if (!reg.find(name))
      luaL_error(L, "%s: fakes: '%s' is not a primitive (see runbook api)", fn, name.c_str());
    FakeEntry f;
    int ty = lua_type(L, -1);
    bool marker = false;
    if (ty == LUA_TTABLE && lua_getmetatable(L, -1)) {
      lua_getfield(L, LUA_REGISTRYINDEX, kFakeMetaKey);
      marker = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    if (ty == LUA_TFUNCTION) {
      f.kind = FakeEntry::Kind::Function;
      lua_pushvalue(L, -1);
      f.ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (marker) {
      lua_getfield(L, -1, "kind");
      std::string kind = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
      lua_getfield(L, -2, "message");
      f.message = lua_isstring(L, -1) ? lua_tostring(L, -1) : "failed (t.fail)";
      lua_pop(L, 2);
      f.kind = kind == "timeout" ? FakeEntry::Kind::Timeout : FakeEntry::Kind::Fail;
    } else if (ty == LUA_TTABLE) {
      std::string err;
      try {
        f.value = lua_to_json(L, -1, "the fake for " + name);
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!err.empty()) luaL_error(L, "%s: %s", fn, err.c_str());
    } else {
      luaL_error(L, "%s: fakes: '%s' must be a table (its result), a function of the arguments, "
                 "t.fail(msg) or t.timeout()", fn, name.c_str());
    }
    fakes->entries[name] = std::move(f);
    lua_pop(L, 1);
  }
  return fakes;
}

int64_t crash_at_of(lua_State* L, int opts, const char* fn) {
  if (lua_isnoneornil(L, opts)) return 0;
  lua_getfield(L, opts, "crash_at");
  int64_t n = 0;
  if (!lua_isnil(L, -1)) {
    int isnum = 0;
    n = lua_tointegerx(L, -1, &isnum);
    if (!isnum || n < 1) luaL_error(L, "%s: crash_at must be an effect number (1, 2, ...)", fn);
  }
  lua_pop(L, 1);
  return n;
}

bool flag_of(lua_State* L, int opts, const char* name) {
  if (lua_isnoneornil(L, opts)) return false;
  lua_getfield(L, opts, name);
  bool b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

json run_json(Journal& j, const ExecResult& res, bool crashed, size_t chain) {
  json r = json::object();
  std::string outcome = crashed ? "crashed" : res.outcome;
  if (outcome.empty()) outcome = res.started ? "failed" : "error";
  r["outcome"] = outcome;
  r["exit_code"] = crashed ? kCrashExit : res.exit_code;
  r["error"] = res.error;
  r["run_id"] = res.run_id;
  r["crashed"] = crashed;
  r["_chain"] = chain;
  json steps = json::array(), effects = json::array(), logs = json::array();
  std::map<int, std::string> names;
  if (res.run_id) {
    for (const auto& s : j.steps(res.run_id)) {
      names[s.idx] = s.name;
      steps.push_back({{"index", s.idx}, {"name", s.name}, {"attempt", s.attempt},
                       {"outcome", s.outcome}, {"error", s.error}});
    }
    for (const auto& e : j.effects(res.run_id)) {
      std::string site = e.site;
      if (!site.empty() && site.back() == ':') site.pop_back();
      effects.push_back({{"seq", e.seq}, {"name", e.name}, {"kind", e.kind}, {"args", e.args},
                         {"result", e.result}, {"error", e.error}, {"state", e.state},
                         {"step", names.count(e.step_idx) ? names[e.step_idx] : ""},
                         {"step_index", e.step_idx}, {"attempt", e.attempt},
                         {"origin", e.origin}, {"site", site}, {"describe", e.describe}});
    }
    for (const auto& l : j.logs(res.run_id))
      logs.push_back({{"level", l.level}, {"message", l.message}, {"step", l.step_idx}});
  }
  r["steps"] = steps;
  r["effects"] = effects;
  r["logs"] = logs;
  return r;
}

// Runs `req` under test in the chain's journal and pushes the result table.
int run_under_test(lua_State* L, Harness* h, size_t chain_idx, ExecRequest& req,
                   std::shared_ptr<LuaFakes> fakes, int64_t crash_at) {
  Chain& chain = h->current->chains[chain_idx];
  fakes->L = L;
  fakes->crash_at = crash_at;
  fakes->crashed = false;
  fakes->fake_error.clear();
  req.options.fakes = fakes.get();
  req.options.deadline_cap = h->current->deadline;
  req.options.artifacts_root = h->current->tmp + "/artifacts";
  req.options.yes = true;
  if (!req.seed) req.seed = 20240601;  // the same path every time
  ExecResult res;
  std::string err;
  try {
    res = execute(req, chain.journal.get(), nullptr, builtin_registry());
  } catch (const std::exception& e) {
    err = e.what();
  }
  chain.journal->set_frozen(false);
  bool crashed = fakes->crashed;
  std::string fake_error = fakes->fake_error;
  if (!err.empty()) return luaL_error(L, "t.run: %s", err.c_str());
  if (!fake_error.empty()) return luaL_error(L, "%s", fake_error.c_str());
  json r;
  try {
    r = run_json(*chain.journal, res, crashed, chain_idx + 1);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!err.empty()) return luaL_error(L, "t.run: reading the run's journal: %s", err.c_str());
  push_json(L, r);
  return 1;
}

std::string make_case_dir() {
  std::string base = fs::temp_directory_path().string() + "/runbook-test-XXXXXX";
  std::vector<char> buf(base.begin(), base.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) return "";
  return buf.data();
}

int l_run(lua_State* L) {
  Harness* h = harness(L);
  std::string file = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!h->current) return luaL_error(L, "t.run: runs happen inside a case: t.case(name, function() ... end)");
  fs::path p = fs::path(file).is_absolute() ? fs::path(file) : fs::path(h->dir) / file;
  std::string path = p.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return luaL_error(L, "t.run: no runbook at %s", path.c_str());
  std::map<std::string, std::string> params;
  std::shared_ptr<LuaFakes> fakes;
  int64_t crash_at = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "params");
    params = params_of(L, -1, "t.run");
    lua_pop(L, 1);
    lua_getfield(L, 2, "fakes");
    fakes = fakes_of(L, -1, h, "t.run");
    lua_pop(L, 1);
    crash_at = crash_at_of(L, 2, "t.run");
  } else {
    fakes = fakes_of(L, 0, h, "t.run");
  }
  CaseState& cs = *h->current;
  if (cs.tmp.empty()) cs.tmp = make_case_dir();
  if (cs.tmp.empty()) return luaL_error(L, "t.run: cannot make a temp directory");
  Chain chain;
  chain.file = path;
  chain.fakes = fakes;
  std::string jerr;
  try {
    chain.journal = std::make_unique<Journal>(cs.tmp + "/journal-" +
                                              std::to_string(cs.chains.size() + 1) + ".db");
  } catch (const std::exception& e) {
    jerr = e.what();
  }
  if (!jerr.empty()) return luaL_error(L, "t.run: %s", jerr.c_str());
  cs.chains.push_back(std::move(chain));
  ExecRequest req;
  req.file = path;
  req.params = params;
  return run_under_test(L, h, cs.chains.size() - 1, req, fakes, crash_at);
}

int l_resume(lua_State* L) {
  Harness* h = harness(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!h->current) return luaL_error(L, "t.resume: runs happen inside a case");
  lua_getfield(L, 1, "_chain");
  lua_Integer chain_no = lua_tointeger(L, -1);
  lua_getfield(L, 1, "run_id");
  lua_Integer run_id = lua_tointeger(L, -1);
  lua_pop(L, 2);
  CaseState& cs = *h->current;
  if (chain_no < 1 || static_cast<size_t>(chain_no) > cs.chains.size() || run_id < 1)
    return luaL_error(L, "bad argument #1 to 't.resume' (a result of t.run in this case expected)");
  size_t idx = static_cast<size_t>(chain_no - 1);
  Journal& j = *cs.chains[idx].journal;
  std::optional<RunRecord> found;
  std::string err;
  try {
    found = j.run(run_id);
    while (found && found->resumed_by) {
      auto next = j.run(found->resumed_by);
      if (!next) break;
      found = next;
    }
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!err.empty()) return luaL_error(L, "t.resume: %s", err.c_str());
  if (!found) return luaL_error(L, "t.resume: run #%d is not in this case's journal", static_cast<int>(run_id));
  RunRecord run = *found;
  if (run.outcome == "succeeded")
    return luaL_error(L, "t.resume: run #%d succeeded: there is nothing to resume", static_cast<int>(run.id));
  if (run.outcome == "error")
    return luaL_error(L, "t.resume: run #%d never started (%s)", static_cast<int>(run.id), run.error.c_str());
  bool assume_done = flag_of(L, 2, "assume_done"), redo = flag_of(L, 2, "redo");
  if (assume_done && redo) return luaL_error(L, "t.resume: assume_done and redo exclude each other");
  std::map<std::string, std::string> params;
  std::shared_ptr<LuaFakes> fakes = cs.chains[idx].fakes;
  int64_t crash_at = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "params");
    params = params_of(L, -1, "t.resume");
    lua_pop(L, 1);
    lua_getfield(L, 2, "fakes");
    if (!lua_isnil(L, -1)) fakes = cs.chains[idx].fakes = fakes_of(L, -1, h, "t.resume");
    lua_pop(L, 1);
    crash_at = crash_at_of(L, 2, "t.resume");
  }
  ExecRequest req;
  try {
    auto effects = j.effects(run.id);
    auto steps = j.steps(run.id);
    ResumePoint rp = resume_point(steps, effects);
    req.file = cs.chains[idx].file;
    req.params = params;
    req.typed_params = run.params;
    if (run.extra.contains("secrets_given") && run.extra["secrets_given"].is_array())
      req.secrets_given = run.extra["secrets_given"].get<std::vector<std::string>>();
    req.resume = true;
    req.allow_param_change = true;
    req.parent_id = run.id;
    req.seed = run.seed;
    req.recorded = effects;
    req.answer_through = rp.answer_through;
    req.recorded_steps = steps;
    req.recorded_outcome = run.outcome;
    req.live_attempt = {rp.step, rp.attempt};
    req.expect_sha256 = run.sha256;
    req.expect_modules = run.modules;
    req.options.mode = Mode::Live;
    req.options.seen_id = root_run_id(j, run);
    if (auto root = j.run(req.options.seen_id)) req.options.seen_started_ms = root->started_ms;
    req.options.seen_mode = "live";
    req.options.in_doubt = assume_done ? InDoubt::AssumeDone : redo ? InDoubt::Redo : InDoubt::Verify;
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!err.empty()) return luaL_error(L, "t.resume: %s", err.c_str());
  return run_under_test(L, h, idx, req, fakes, crash_at);
}

// ---- running files ----

struct CaseResult {
  std::string file, name, site;
  bool ok = true;
  std::string message;  // "file:line: what differed"
  int64_t ms = 0;
};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > 2000) s = s.substr(0, 2000) + "…";
  return s;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\n': out += "&#10;"; break;
      case '\t': out += "&#9;"; break;
      default:
        if (c < 0x20) out += "?";  // not allowed in XML 1.0
        else out += static_cast<char>(c);
    }
  }
  return out;
}

class Output {
 public:
  explicit Output(bool json) : json_(json) {}
  void result(const CaseResult& r) {
    if (json_) {
      json ev{{"event", "case"}, {"file", r.file}, {"name", r.name}, {"site", r.site},
              {"ok", r.ok}, {"duration_ms", r.ms}};
      if (!r.ok) ev["message"] = r.message;
      print_event(ev);
    } else if (r.ok) {
      std::printf("ok    %s: %s\n", r.file.c_str(), one_line(r.name).c_str());
    } else {
      std::printf("FAIL  %s: %s: %s\n", r.file.c_str(), one_line(r.name).c_str(),
                  one_line(r.message).c_str());
    }
    std::fflush(stdout);
  }
  void summary(int passed, int failed) {
    if (json_)
      print_event(json{{"event", "summary"}, {"passed", passed}, {"failed", failed}});
    else
      std::printf("%d passed, %d failed\n", passed, failed);
  }

 private:
  bool json_;
};

// Loads one test file and runs its cases; each result is reported as it comes.
void run_file(const std::string& file, Millis timeout, std::vector<CaseResult>& results,
              Output& out) {
  auto report = [&](CaseResult r) {
    out.result(r);
    results.push_back(std::move(r));
  };
  std::string code, err;
  if (!read_source_file(file, &code, &err)) {
    report({file, "(load)", file, false, err, 0});
    return;
  }
  std::error_code ec;
  std::string abs = fs::absolute(file, ec).lexically_normal().string();
  Harness h;
  h.file = file;
  h.dir = fs::path(abs).parent_path().string();
  h.lib_source = "@" + stdlib_dir() + "/runbook/test.lua";
  SandboxOptions so;
  so.module_dirs = {h.dir, stdlib_dir()};
  Sandbox sb(so);
  h.sb = &sb;
  static const luaL_Reg native[] = {{"init", l_init},  {"where", l_where},   {"case", l_case},
                                    {"run", l_run},    {"resume", l_resume}, {nullptr, nullptr}};
  bool built = sb.protect(
      [&](lua_State* L) {
        lua_pushlightuserdata(L, &h);
        lua_setfield(L, LUA_REGISTRYINDEX, kHarnessKey);
        install_pure_modules(L);
        luaL_newlib(L, native);
        sb.preload("runbook.test_native");
      },
      &err);
  if (!built) {
    report({file, "(load)", file, false, "cannot build the test's interpreter: " + err, 0});
    return;
  }
  auto deadline_for = [&] { return std::chrono::steady_clock::now() + timeout; };
  std::string limit = format_duration(timeout);
  // The file's top level: declares the cases.
  if (!sb.load_source(lua_source_text(code), "@" + file, &err)) {
    report({file, "(load)", file, false, err, 0});
    return;
  }
  int chunk = luaL_ref(sb.L(), LUA_REGISTRYINDEX);
  sb.arm(deadline_for(), "the test file's top level exceeded its time limit of " + limit);
  bool ok = sb.protect(
      [&](lua_State* L) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, chunk);
        lua_call(L, 0, 0);
      },
      &err);
  sb.disarm();
  luaL_unref(sb.L(), LUA_REGISTRYINDEX, chunk);
  if (!ok) {
    report({file, "(load)", file, false, err, 0});
    return;
  }
  if (h.cases.empty()) {
    report({file, "(load)", file, false, file + ": no cases (t.case(name, function() ... end))", 0});
    return;
  }
  h.running_cases = true;
  for (size_t i = 0; i < h.cases.size(); ++i) {
    Case c = h.cases[i];
    auto t0 = std::chrono::steady_clock::now();
    CaseResult r{file, c.name, c.site, true, "", 0};
    {
      CaseState cs;
      cs.deadline = deadline_for();
      h.current = &cs;
      sb.arm(cs.deadline, "the case exceeded its time limit of " + limit);
      std::string cerr;
      bool cok = sb.protect(
          [&](lua_State* L) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, c.ref);
            lua_call(L, 0, 0);
          },
          &cerr);
      if (!cok) {
        r.ok = false;
        r.message = cerr;
        if (!sb.killed().empty()) r.message = c.site + ": " + sb.killed();
      }
      sb.disarm();
      h.current = nullptr;
    }
    luaL_unref(sb.L(), LUA_REGISTRYINDEX, c.ref);
    h.cases[i].ref = LUA_NOREF;
    r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    report(std::move(r));
    if (i % 64 == 63) lua_gc(sb.L(), LUA_GCCOLLECT);
  }
}

void collect(const std::string& path, std::vector<std::string>& files) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (found.size() > kMaxTestFiles)
        throw UsageError(path + ": more than " + std::to_string(kMaxTestFiles) + " test files");
      std::string name = it->path().filename().string();
      std::error_code fec;
      if (it->is_regular_file(fec) && name.size() > 9 &&
          name.compare(name.size() - 9, 9, "_test.lua") == 0)
        found.push_back(it->path().string());
    }
    if (ec) throw UsageError(path + ": " + ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
    return;
  }
  if (!fs::exists(path, ec)) throw UsageError(path + ": no such file or directory");
  files.push_back(path);
}

void write_junit(const std::string& path, const std::vector<CaseResult>& results) {
  std::map<std::string, std::vector<const CaseResult*>> by_file;
  std::vector<std::string> order;
  for (const auto& r : results) {
    if (!by_file.count(r.file)) order.push_back(r.file);
    by_file[r.file].push_back(&r);
  }
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  int total = 0, failures = 0;
  for (const auto& r : results) {
    ++total;
    failures += !r.ok;
  }
  x += "<testsuites name=\"runbook test\" tests=\"" + std::to_string(total) + "\" failures=\"" +
       std::to_string(failures) + "\">\n";
  for (const auto& file : order) {
    const auto& cases = by_file[file];
    int f = 0;
    int64_t ms = 0;
    for (const auto* r : cases) {
      f += !r->ok;
      ms += r->ms;
    }
    char secs[64];
    std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(ms) / 1000.0);
    x += "  <testsuite name=\"" + xml_escape(file) + "\" tests=\"" + std::to_string(cases.size()) +
         "\" failures=\"" + std::to_string(f) + "\" errors=\"0\" time=\"" + secs + "\">\n";
    for (const auto* r : cases) {
      std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(r->ms) / 1000.0);
      x += "    <testcase classname=\"" + xml_escape(file) + "\" name=\"" + xml_escape(r->name) +
           "\" file=\"" + xml_escape(r->site) + "\" time=\"" + secs + "\"";
      if (r->ok) {
        x += "/>\n";
      } else {
        x += ">\n      <failure message=\"" + xml_escape(one_line(r->message)) + "\">" +
             xml_escape(r->message) + "</failure>\n    </testcase>\n";
      }
    }
    x += "  </testsuite>\n";
  }
  x += "</testsuites>\n";
  std::ofstream o(path, std::ios::binary | std::ios::trunc);
  o << x;
  o.close();
  if (!o) throw std::runtime_error("cannot write " + path);
}

// ---- --from-run: a journaled run as a test file ----

std::string lua_string(const std::string& v) {
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03d", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool identifier(const std::string& k) {
  static const std::set<std::string> reserved = {
      "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
      "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"};
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0])) || reserved.count(k)) return false;
  for (unsigned char c : k)
    if (!std::isalnum(c) && c != '_') return false;
  return true;
}

// JSON (from the journal: nested at most 200 levels) as a Lua expression.
std::string lua_value(const json& v) {
  if (v.is_null()) return "json.null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
    return buf;
  }
  if (v.is_string()) return lua_string(v.get<std::string>());
  std::string out = "{";
  bool first = true;
  if (v.is_array()) {
    for (const auto& x : v) {
      out += (first ? " " : ", ") + lua_value(x);
      first = false;
    }
  } else {
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string key = identifier(it.key()) ? it.key() : "[" + lua_string(it.key()) + "]";
      out += (first ? " " : ", ") + key + " = " + lua_value(it.value());
      first = false;
    }
  }
  return out + (first ? "}" : " }");
}

bool masked(const json& v) {
  if (v.is_string()) return v.get<std::string>().find("***") != std::string::npos;
  if (v.is_array() || v.is_object())
    for (const auto& x : v)
      if (masked(x)) return true;
  return false;
}

int from_run(const TestFlags& f) {
  HistoryCommon hc{f.journal_path, false, true, false};
  Journal j(journal_path_of(hc));
  int64_t id = resolve_run_id(j, f.from_run);
  RunRecord run = *j.run(id);
  auto effects = j.effects(id);
  fs::path file = run.file;
  if (file.is_relative() && !run.cwd.empty()) file = fs::path(run.cwd) / file;
  file = file.lexically_normal();
  std::string shown = file.string();
  if (!f.output.empty()) {
    std::error_code ec;
    fs::path dir = fs::absolute(f.output, ec).parent_path();
    fs::path rel = fs::relative(file, dir, ec);
    if (!ec && !rel.empty()) shown = rel.string();
  }
  std::string rid = "run #" + std::to_string(id);
  std::string o;
  o += "-- Written by `runbook test --from-run " + std::to_string(id) + "`: " + rid + " of " +
       run.runbook + " " + run.version + " (" + run.outcome + ", " + iso_utc(run.started_ms) +
       ").\n-- Its recorded results answer as fakes; its calls and its outcome are the assertions.\n";
  std::vector<std::string> secrets;
  std::string params;
  if (run.params.is_object())
    for (auto it = run.params.begin(); it != run.params.end(); ++it) {
      if (masked(it.value())) {
        secrets.push_back(it.key());
        continue;
      }
      params += "      " + (identifier(it.key()) ? it.key() : "[" + lua_string(it.key()) + "]") +
                " = " + lua_value(it.value()) + ",\n";
    }
  if (!secrets.empty()) {
    o += "-- Secret parameters are left out (the journal never had them):";
    for (const auto& s : secrets) o += " " + s;
    o += ". Give test values in params.\n";
  }
  o += "local t = require \"runbook.test\"\n\n";
  o += "t.case(" + lua_string(rid + " of " + run.runbook + " ends " + run.outcome + " again") +
       ", function()\n  local r = t.run(" + lua_string(shown) + ", {\n    params = {\n" + params +
       "    },\n    fakes = {\n";
  // Every call's recorded answer, in order, per effect.
  std::map<std::string, std::vector<std::string>> answers;
  std::vector<std::string> order;
  size_t calls = 0;
  for (const auto& e : effects) {
    if (e.state != "done" && e.state != "failed") continue;  // began and never finished
    ++calls;
    if (!answers.count(e.name)) order.push_back(e.name);
    if (e.state == "failed") {
      std::string msg = e.error;
      if (msg.rfind(e.name + ": ", 0) == 0) msg = msg.substr(e.name.size() + 2);
      answers[e.name].push_back("t.fail(" + lua_string(msg) + ")");
    } else {
      answers[e.name].push_back(lua_value(e.result.is_null() ? json::object() : e.result));
    }
  }
  for (const auto& name : order) {
    o += "      [" + lua_string(name) + "] = t.sequence{\n";
    for (const auto& a : answers[name]) o += "        " + a + ",\n";
    o += "      },\n";
  }
  o += "    },\n  })\n";
  o += "  t.eq(r.outcome, " + lua_string(run.outcome == "running" ? "crashed" : run.outcome) + ")\n";
  for (const auto& e : effects) {
    if (e.state != "done" && e.state != "failed") continue;
    o += "  t.called(r, " + lua_string(e.name) + ", " + lua_value(e.args) + ")\n";
  }
  o += "  t.eq(#r.effects, " + std::to_string(calls) + ")\n";
  o += "end)\n";
  if (f.output.empty()) {
    std::fputs(o.c_str(), stdout);
  } else {
    std::ofstream out(f.output, std::ios::binary | std::ios::trunc);
    out << o;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + f.output);
    std::fprintf(stderr, "wrote %s: a test of %s (%zu calls)\n", f.output.c_str(), rid.c_str(), calls);
  }
  return 0;
}

}  // namespace

int cmd_test(const TestFlags& f) {
  if (!f.from_run.empty()) return from_run(f);
  if (f.paths.empty()) throw UsageError("runbook test: give test files or directories (*_test.lua)");
  auto timeout = parse_duration(f.timeout);
  if (!timeout || timeout->count() <= 0)
    throw UsageError("--timeout: a duration like \"60s\" expected, got \"" + f.timeout + "\"");
  std::vector<std::string> files;
  for (const auto& p : f.paths) collect(p, files);
  if (files.empty()) throw UsageError("no *_test.lua files in " + f.paths.front());
  Output out(f.json);
  std::vector<CaseResult> results;
  for (const auto& file : files) run_file(file, *timeout, results, out);
  int passed = 0, failed = 0;
  for (const auto& r : results) (r.ok ? passed : failed)++;
  out.summary(passed, failed);
  if (!f.junit.empty()) write_junit(f.junit, results);
  return failed == 0 ? 0 : 1;
}

}  // namespace rb::cli
