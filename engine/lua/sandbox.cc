#include "lua/sandbox.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/hash.h"
#include "core/interrupt.h"
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
  void* p = std::realloc(ptr, nsize);
  if (p) self->used_ = self->used_ - old + nsize;
  return p;
}

Sandbox::Sandbox(SandboxOptions opts) : opts_(std::move(opts)) {
  L_ = lua_newstate(&Sandbox::alloc, this);
  if (!L_) throw std::runtime_error("cannot create a Lua state");
  *static_cast<Sandbox**>(lua_getextraspace(L_)) = this;
  build_globals();
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

Sandbox::~Sandbox() {
  if (L_) lua_close(L_);
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

  allow(L, G, "string", luaopen_string, kString);
  allow(L, G, "table", luaopen_table, kTable);
  allow(L, G, "math", luaopen_math, kMath);
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

int Sandbox::l_undefined_global(lua_State* L) {
  const char* name = lua_tostring(L, 2);
  return luaL_error(L, "undefined global '%s'", name ? name : "?");
}

void Sandbox::arm(SteadyTime deadline, std::string what) {
  deadline_ = deadline;
  deadline_what_ = std::move(what);
  killed_.clear();
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

void Sandbox::disarm() {
  deadline_ = SteadyTime::max();
  killed_.clear();
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, kHookEvery);
}

void Sandbox::kill(std::string reason) {
  if (killed_.empty()) killed_ = std::move(reason);
  // Every instruction from now on raises, in this thread and (via the flag) in any other.
  lua_sethook(L_, &Sandbox::hook, LUA_MASKCOUNT, 1);
}

void Sandbox::hook(lua_State* L, lua_Debug*) {
  Sandbox* self = from(L);
  if (self->killed_.empty()) {
    if (interrupt_requested()) {
      self->interrupted_ = true;
      self->killed_ = "interrupted";
    } else if (self->deadline_ != SteadyTime::max() &&
               std::chrono::steady_clock::now() > self->deadline_) {
      self->killed_ = self->deadline_what_;
    } else if (self->over_limit_) {
      self->killed_ = "the memory ceiling of " +
                      std::to_string(self->opts_.memory_limit >> 20) + " MiB was reached";
    }
  }
  if (!self->killed_.empty()) {
    lua_sethook(L, &Sandbox::hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", self->killed_.c_str());
  }
}

// pcall and xpcall as in Lua, except that a stopped step (deadline, Ctrl-C, memory) cannot be
// caught: the error is raised again past the runbook's handler.
int Sandbox::l_pcall(lua_State* L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  Sandbox* self = from(L);
  if (status == LUA_ERRMEM && self->killed_.empty()) self->kill("the memory ceiling was reached");
  if (status != LUA_OK && !self->killed_.empty()) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 1);
  return lua_gettop(L);
}

int Sandbox::l_xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
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

int Sandbox::l_require(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
      return luaL_error(L, "require: bad module name '%s'", name.c_str());
  if (name.find("..") != std::string::npos || name.front() == '.')
    return luaL_error(L, "require: bad module name '%s'", name.c_str());

  lua_getfield(L, LUA_REGISTRYINDEX, kLoadedKey);
  lua_getfield(L, -1, name.c_str());
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
  std::string code, err;
  if (!read_source_file(found, &code, &err))  // bounded, as the runbook file is
    return luaL_error(L, "require '%s': %s", name.c_str(), err.c_str());
  if (!self->load_source(lua_source_text(code), "@" + found, &err))
    return luaL_error(L, "%s", err.c_str());
  self->modules_[name] = sha256_hex(code);
  lua_pushstring(L, name.c_str());
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name.c_str());
  return 1;
}

}  // namespace rb
