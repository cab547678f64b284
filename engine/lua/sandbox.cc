#include "lua/sandbox.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/hash.h"
#include "core/interrupt.h"
#include "lua/bounded_string.h"
#include "lua/bounded_table.h"
#include "lua/derive.h"
#include "core/source_file.h"

namespace rb {
namespace {

// What a runbook may use of the standard library. Everything else does not exist for it.
const char* kBase[] = {"assert", "error",    "ipairs",   "next",     "pairs",
                       "rawequal", "rawget", "rawlen",   "rawset",   "select",
                       "setmetatable", "getmetatable", "tonumber", "tostring", "type",
                       "_VERSION"};
const char* kString[] = {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                         "match", "rep", "reverse", "sub", "upper", "pack", "packsize", "unpack"};
const char* kTable[] = {"concat", "insert", "move", "pack", "remove", "sort", "unpack"};
const char* kMath[] = {"abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log",
                       "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random",
                       "randomseed", "sin", "sqrt", "tan", "tointeger", "type", "ult", "atan",
                       "asin", "acos"};
const char* kUtf8[] = {"char", "charpattern", "codepoint", "codes", "len", "offset"};
const char* kCoroutine[] = {"close", "create", "isyieldable", "resume", "running", "status",
                            "wrap", "yield"};

const char* kLoadedKey = "runbook.loaded";
const char* kSeedKey = "runbook.randomseed";  // math.randomseed as built, out of the runbook's reach
// The functions whose errors are the procedure failing, not a bug (a set keyed by function): the
// original `error` and `assert` (the runbook failing on purpose), and those marked with
// Sandbox::failure_function (json.decode of a bad text: the data is bad, not the code).
const char* kFailureFnsKey = "runbook.failure_fns";
const char* kBindingErrorMeta = "runbook.error";  // lua/binding.cc's error tables
constexpr int kHookEvery = 1000;  // instructions between checks of the deadline and Ctrl-C

template <size_t N>
void copy_fields(lua_State* L, int from, int to, const char* (&names)[N]) {
  from = lua_absindex(L, from);
  to = lua_absindex(L, to);
  for (const char* n : names) {
    lua_getfield(L, from, n);
    lua_setfield(L, to, n);
  }
}

// Opens a library into a fresh table and keeps only the allowed names.
template <size_t N>
void allow(lua_State* L, int G, const char* name, lua_CFunction open, const char* (&names)[N]) {
  luaL_requiref(L, name, open, 0);  // module table on the stack, not in globals
  lua_newtable(L);
  copy_fields(L, -2, -1, names);
  lua_setfield(L, G, name);
  lua_pop(L, 1);
}

}  // namespace

Sandbox* Sandbox::from(lua_State* L) { return *static_cast<Sandbox**>(lua_getextraspace(L)); }

void* Sandbox::alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* self = static_cast<Sandbox*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    self->used_ -= old;
    return nullptr;
  }
  if (nsize > old && self->used_ - old + nsize > self->opts_.memory_limit) {
    self->over_limit_ = true;
    return nullptr;
  }
  constexpr uint32_t kAllocCheckEvery = 4096;
  if (nsize > old && ++self->allocs_ % kAllocCheckEvery == 0 && self->killed_.empty() &&
      self->deadline_ != SteadyTime::max()) {
    bool stop = interrupt_requested() || std::chrono::steady_clock::now() > self->deadline_;
    if (stop) {
      if (interrupt_requested()) self->interrupted_ = true;
      self->kill(interrupt_requested() ? std::string("interrupted") : self->deadline_what_);
      return nullptr;
    }
  }
  void* p = std::realloc(ptr, nsize);
  if (p) self->used_ = self->used_ - old + nsize;
  return p;
}

Sandbox::Sandbox(SandboxOptions opts) : opts_(std::move(opts)) {
  L_ = lua_newstate(&Sandbox::alloc, this);
  if (!L_) throw std::runtime_error("cannot create a Lua state");
  *static_cast<Sandbox**>(lua_getextraspace(L_)) = this;
  lua_atpanic(L_, &Sandbox::panic);
  std::string err;
  if (!protect([this](lua_State*) { build_globals(); }, &err))
    throw std::runtime_error("cannot build the Lua sandbox: " + err);
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

Sandbox::~Sandbox() {
  // After a panic the interpreter may be inconsistent; the process is about to end anyway.
  if (L_ && !panicked_) lua_close(L_);
}

int Sandbox::panic(lua_State* L) {
  Sandbox* self = from(L);
  self->panicked_ = true;
  std::string msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "an error value";
  throw LuaPanic("internal error: a Lua error outside any protected call: " + msg);
}

namespace {

int protect_trampoline(lua_State* L) {
  const auto* fn = static_cast<const std::function<void(lua_State*)>*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  // A C++ exception must not cross lua_pcall (it would be taken for a Lua error without a
  // value); Lua's own errors are not std::exceptions and pass.
  std::string cxx;
  try {
    (*fn)(L);
  } catch (const std::exception& e) {
    cxx = e.what();
  }
  if (!cxx.empty()) return luaL_error(L, "%s", cxx.c_str());
  return 0;
}

int tostring_trampoline(lua_State* L) {
  luaL_tolstring(L, 1, nullptr);
  return 1;
}

}  // namespace

bool Sandbox::protect(const std::function<void(lua_State*)>& fn, std::string* error,
                      ErrorKind* kind) {
  int top = lua_gettop(L_);
  if (!lua_checkstack(L_, 4)) {
    if (error) *error = "no room on the Lua stack";
    if (kind) *kind = ErrorKind::Bug;
    return false;
  }
  int msgh = 0;
  if (kind) {
    lua_pushcfunction(L_, &Sandbox::l_classify);
    msgh = lua_gettop(L_);
  }
  // A memory error does not call the handler: it stays Failed (the ceiling, not the code).
  last_kind_ = ErrorKind::Failed;
  lua_pushcfunction(L_, protect_trampoline);
  lua_pushlightuserdata(L_, const_cast<std::function<void(lua_State*)>*>(&fn));
  int rc = lua_pcall(L_, 1, 0, msgh);
  if (rc != LUA_OK && error) *error = error_text(-1);
  if (kind) *kind = rc == LUA_OK ? ErrorKind::None : last_kind_;
  lua_settop(L_, top);
  return rc == LUA_OK;
}

// The message handler of a classified protect: runs where the error was raised (level 1 is the
// function that raised it), with the error value at 1, which it returns unchanged. Only raw
// reads and comparisons: nothing of the runbook's runs here.
int Sandbox::l_classify(lua_State* L) {
  Sandbox* self = from(L);
  ErrorKind kind = ErrorKind::Bug;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, kBindingErrorMeta);
    bool ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ours) {
      lua_pushliteral(L, "bug");
      bool bug = lua_rawget(L, 1) == LUA_TBOOLEAN && lua_toboolean(L, -1);
      lua_pop(L, 1);
      kind = bug ? ErrorKind::Bug : ErrorKind::Failed;
      self->last_kind_ = kind;
      lua_settop(L, 1);
      return 1;
    }
  }
  // The memory ceiling refusing an allocation before it is tried (string.rep, table.move) is
  // the ceiling, as a memory error is, not the code.
  if (lua_type(L, 1) == LUA_TSTRING && std::strstr(lua_tostring(L, 1), "the memory ceiling of ")) {
    self->last_kind_ = ErrorKind::Failed;
    return 1;
  }
  lua_Debug ar;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "f", &ar)) {
    lua_getfield(L, LUA_REGISTRYINDEX, kFailureFnsKey);
    lua_pushvalue(L, -2);
    if (lua_istable(L, -2) && lua_rawget(L, -2) != LUA_TNIL) kind = ErrorKind::Failed;
    lua_settop(L, 1);
  }
  self->last_kind_ = kind;
  lua_settop(L, 1);
  return 1;
}

std::string Sandbox::error_text(int idx) {
  idx = lua_absindex(L_, idx);
  int t = lua_type(L_, idx);
  if (t == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L_, idx, &n);
    return std::string(s, n);
  }
  if (t == LUA_TNIL || t == LUA_TNONE) return "nil (an error without a message)";
  if (!lua_checkstack(L_, 3)) return std::string("a ") + lua_typename(L_, t) + " error value";
  lua_pushcfunction(L_, tostring_trampoline);
  lua_pushvalue(L_, idx);
  int rc = lua_pcall(L_, 1, 1, 0);
  std::string out;
  if (rc == LUA_OK && lua_type(L_, -1) == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L_, -1, &n);
    out.assign(s, n);
  } else {
    out = std::string("a ") + lua_typename(L_, t) + " error value whose __tostring failed";
    if (lua_type(L_, -1) == LUA_TSTRING) out += std::string(": ") + lua_tostring(L_, -1);
  }
  lua_pop(L_, 1);
  return out;
}

bool Sandbox::seed(int64_t seed, std::string* error) {
  return protect(
      [seed](lua_State* L) {
        lua_getfield(L, LUA_REGISTRYINDEX, kSeedKey);
        lua_pushinteger(L, static_cast<lua_Integer>(seed));
        lua_call(L, 1, 0);
      },
      error);
}

void Sandbox::build_globals() {
  lua_State* L = L_;
  // luaopen_base writes into the registry's globals table; we let it, then replace that table
  // with one holding only what is allowed.
  luaL_requiref(L, "_G", luaopen_base, 0);
  int base = lua_gettop(L);
  lua_newtable(L);
  int G = lua_gettop(L);
  copy_fields(L, base, G, kBase);
  lua_newtable(L);
  for (const char* f : {"error", "assert"}) {
    lua_getfield(L, base, f);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, kFailureFnsKey);
  lua_pushvalue(L, G);
  lua_setfield(L, G, "_G");
  lua_pushcfunction(L, &Sandbox::l_pcall);
  lua_setfield(L, G, "pcall");
  lua_pushcfunction(L, &Sandbox::l_xpcall);
  lua_setfield(L, G, "xpcall");
  lua_pushcfunction(L, &Sandbox::l_load);
  lua_setfield(L, G, "load");
  lua_pushcfunction(L, &Sandbox::l_require);
  lua_setfield(L, G, "require");
  lua_getfield(L, base, "setmetatable");
  lua_pushcclosure(L, &Sandbox::l_setmetatable, 1);
  lua_setfield(L, G, "setmetatable");

  allow(L, G, "string", luaopen_string, kString);
  install_bounded_string(L, G);  // find/match/gmatch/gsub/rep with a step budget
  install_derive(L, G);          // upper/lower/reverse/sub/rep/format register what they derive
  allow(L, G, "table", luaopen_table, kTable);
  install_bounded_table(L, G);  // move/insert/remove/concat/sort that check the deadline
  allow(L, G, "math", luaopen_math, kMath);
  lua_getfield(L, G, "math");
  lua_getfield(L, -1, "randomseed");
  lua_setfield(L, LUA_REGISTRYINDEX, kSeedKey);
  lua_pop(L, 1);
  allow(L, G, "utf8", luaopen_utf8, kUtf8);
  allow(L, G, "coroutine", luaopen_coroutine, kCoroutine);

  // ("x"):dump() would reach the full string library through the string metatable.
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_getfield(L, G, "string");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);

  // Reading an undefined global is an error, not nil: a typo fails loudly at 3 a.m.
  lua_newtable(L);
  lua_pushcfunction(L, &Sandbox::l_undefined_global);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, G);

  lua_pushvalue(L, G);
  lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kLoadedKey);
  lua_settop(L, 0);
}

void Sandbox::failure_function(int idx) {
  idx = lua_absindex(L_, idx);
  lua_getfield(L_, LUA_REGISTRYINDEX, kFailureFnsKey);
  lua_pushvalue(L_, idx);
  lua_pushboolean(L_, 1);
  lua_rawset(L_, -3);
  lua_pop(L_, 1);
}

int Sandbox::l_undefined_global(lua_State* L) {
  const char* name = lua_tostring(L, 2);
  luaL_where(L, 1);  // where the runbook read it (level 0 is this metamethod)
  lua_pushfstring(L, "undefined global '%s'", name ? name : "?");
  lua_concat(L, 2);
  return lua_error(L);
}

// Each step starts afresh: the memory ceiling a step hit does not stop the cleanup after it.
void Sandbox::arm(SteadyTime deadline, std::string what) {
  deadline_ = deadline;
  deadline_what_ = std::move(what);
  killed_.clear();
  interrupted_ = false;  // the cleanup after an interrupted step is stopped only by another one
  over_limit_ = false;
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

void Sandbox::disarm() {
  deadline_ = SteadyTime::max();
  killed_.clear();
  over_limit_ = false;
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

std::string Sandbox::memory_message() const {
  return "the memory ceiling of " + std::to_string(opts_.memory_limit >> 20) + " MiB was reached";
}

void Sandbox::kill(std::string reason) {
  if (killed_.empty()) killed_ = std::move(reason);
  // Every instruction from now on raises, in this thread and (via the flag) in any other.
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, 1);
}

void Sandbox::hook(lua_State* L, lua_Debug*) { from(L)->check_stop(L); }

void Sandbox::check_stop(lua_State* L) {
  if (killed_.empty()) {
    if (interrupt_requested()) {
      interrupted_ = true;
      killed_ = "interrupted";
    } else if (deadline_ != SteadyTime::max() && std::chrono::steady_clock::now() > deadline_) {
      killed_ = deadline_what_;
    } else if (over_limit_) {
      killed_ = memory_message();
    }
  }
  if (!killed_.empty()) {
    lua_sethook(L, &Sandbox::hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", killed_.c_str());
  }
}

// pcall and xpcall as in Lua, except that a stopped step (deadline, Ctrl-C, memory) cannot be
// caught: the error is raised again past the runbook's handler.
int Sandbox::l_pcall(lua_State* L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  Sandbox* self = from(L);
  if (status == LUA_ERRMEM && self->killed_.empty()) self->kill(self->memory_message());
  if (status != LUA_OK && !self->killed_.empty()) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 1);
  return lua_gettop(L);
}

// Lua calls the message handler where the error was raised; when that is the hook stopping the
// step, hooks are off inside it and a handler that loops would never be stopped. So the runbook's
// handler is not called at all once the step is stopped.
int Sandbox::l_xpcall_handler(lua_State* L) {
  if (!from(L)->killed_.empty()) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// Finalizers run with hooks off (inside the collector, at a step's end, at lua_close), so a
// __gc that loops escapes every deadline: the sandbox does not let a runbook set one. (Lua
// registers a finalizer only when setmetatable sees __gc; adding it to the table later does
// nothing.)
int Sandbox::l_setmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc finalizers are not allowed in a runbook (they "
                           "would run outside the step's deadline); use a <close> variable");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int Sandbox::l_xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, &Sandbox::l_xpcall_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, 1);  // f
  lua_copy(L, 2, 1);    // handler at 1
  lua_replace(L, 2);    // f at 2
  int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
  Sandbox* self = from(L);
  if (status != LUA_OK && !self->killed_.empty()) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_replace(L, 1);
  return lua_gettop(L);
}

bool Sandbox::load_source(const std::string& code, const std::string& chunkname,
                          std::string* error) {
  if (!code.empty() && code[0] == LUA_SIGNATURE[0]) {
    *error = chunkname.substr(1) + ": binary chunks are not allowed";
    return false;
  }
  int rc = luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t");
  if (rc != LUA_OK) {
    *error = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load";
    lua_pop(L_, 1);
    return false;
  }
  return true;
}

// load(chunk [, chunkname [, mode [, env]]]): text only; the environment defaults to the
// sandbox's globals.
int Sandbox::l_load(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  const char* name = luaL_optstring(L, 2, "=(load)");
  const char* mode = luaL_optstring(L, 3, "t");
  if (std::strchr(mode, 'b')) return luaL_error(L, "load: binary chunks are not allowed");
  int has_env = !lua_isnone(L, 4);
  int rc = luaL_loadbufferx(L, s, len, name, "t");
  if (rc != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (has_env) {
    lua_pushvalue(L, 4);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

namespace {

// Whether `path` (canonical) is `dir` or beneath it, by whole components.
bool inside(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p)
    if (p == path.end() || *p != *d) return false;
  return true;
}

// While a module's chunk runs, loaded[name] holds this: a require of it then is a cycle.
void* loading_marker() {
  static char marker;
  return &marker;
}

}  // namespace

void Sandbox::preload(const char* name) {
  lua_getfield(L_, LUA_REGISTRYINDEX, kLoadedKey);
  lua_insert(L_, -2);
  lua_setfield(L_, -2, name);
  lua_pop(L_, 1);
}

int Sandbox::l_require(lua_State* L) {
  namespace fs = std::filesystem;
  std::string name = luaL_checkstring(L, 1);
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
      return luaL_error(L, "require: bad module name '%s'", name.c_str());
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '.' ||
      name.size() > 200)
    return luaL_error(L, "require: bad module name '%s'", name.c_str());
  lua_settop(L, 1);

  lua_getfield(L, LUA_REGISTRYINDEX, kLoadedKey);  // 2
  lua_getfield(L, 2, name.c_str());
  if (lua_touserdata(L, -1) == loading_marker())
    return luaL_error(L, "require: module '%s' requires itself (a cycle)", name.c_str());
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);

  Sandbox* self = from(L);
  std::string rel = name;
  for (char& c : rel)
    if (c == '.') c = '/';
  std::string found, tried;
  for (const auto& dir : self->opts_.module_dirs) {
    std::string p = dir + "/" + rel + ".lua";
    tried += "\n\tno file '" + p + "'";
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) {
      found = p;
      break;
    }
  }
  if (found.empty())
    return luaL_error(L, "module '%s' not found (Lua source only, from stdlib/ or beside the "
                         "runbook):%s", name.c_str(), tried.c_str());
  // A symlink beside the runbook must not reach the rest of the machine.
  std::error_code ec;
  fs::path real = fs::canonical(found, ec);
  bool allowed = false;
  for (const auto& dir : self->opts_.module_dirs) {
    std::error_code dec;
    fs::path d = fs::canonical(dir, dec);
    if (!ec && !dec && inside(real, d)) allowed = true;
  }
  if (!allowed)
    return luaL_error(L, "require: module '%s' (%s) resolves to %s, outside stdlib/ and the "
                         "runbook's directory", name.c_str(), found.c_str(),
                      ec ? "an unreadable path" : real.c_str());
  std::string code, err;
  if (!read_source_file(real.string(), &code, &err))  // bounded, as the runbook file is
    return luaL_error(L, "require '%s': %s", name.c_str(), err.c_str());
  if (!self->load_source(lua_source_text(code), "@" + found, &err))
    return luaL_error(L, "%s", err.c_str());
  self->modules_[name] = sha256_hex(code);
  lua_pushlightuserdata(L, loading_marker());
  lua_setfield(L, 2, name.c_str());
  lua_pushstring(L, name.c_str());
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushnil(L);
    lua_setfield(L, 2, name.c_str());
    return lua_error(L);  // the module's error as it was (a stopped step stays stopped)
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name.c_str());
  return 1;
}

}  // namespace rb
