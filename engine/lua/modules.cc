#include "lua/modules.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "dispatch/dispatcher.h"
#include "lua/convert.h"
#include "lua/derive.h"
#include "lua/sandbox.h"

namespace rb {
namespace {

std::string concat_args(lua_State* L, int first) {
  std::string out;
  int n = lua_gettop(L);
  for (int i = first; i <= n; ++i) {
    if (i > first) out += '\t';
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);
    out.append(s, len);
    lua_pop(L, 1);
  }
  return out;
}

int emit(lua_State* L, const char* level) {
  std::string msg = concat_args(L, 1);
  Sandbox* sb = Sandbox::from(L);
  if (sb->dispatcher) sb->dispatcher->log(level, msg);
  return 0;
}

int l_info(lua_State* L) { return emit(L, "info"); }
int l_warn(lua_State* L) { return emit(L, "warn"); }
int l_error(lua_State* L) { return emit(L, "error"); }
int l_debug(lua_State* L) { return emit(L, "debug"); }

// A string holding a secret that JSON's escaping changes (a quote, a backslash, a control
// character in it) is in the text as its escaped form: that form is registered as a secret.
void derive_json(lua_State* L, Redactor& r, const json& v, std::vector<std::string>* out) {
  std::vector<const json*> todo{&v};
  auto check = [&](const std::string& s) {
    if (s.size() < Redactor::kMinDerived || !r.contains(s)) return;
    std::string esc = json(s).dump();
    esc = esc.substr(1, esc.size() - 2);
    if (esc != s) out->push_back(std::move(esc));
  };
  while (!todo.empty()) {
    const json* j = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      check(j->get_ref<const std::string&>());
    } else if (j->is_object()) {
      for (auto it = j->begin(); it != j->end(); ++it) {
        check(it.key());
        todo.push_back(&it.value());
      }
    } else if (j->is_array()) {
      for (const auto& e : *j) todo.push_back(&e);
    }
  }
  (void)L;
}

int l_json_encode(lua_State* L) {
  std::string out;
  std::string err;
  std::vector<std::string> derived;
  try {
    json v = lua_to_json(L, 1, "argument #1");
    if (Redactor* r = derive_redactor(L)) derive_json(L, *r, v, &derived);
    bool pretty = lua_toboolean(L, 2);
    // Object keys sorted: a Lua table has no key order (two equal tables can iterate
    // differently), and the same value must give the same text (plans, digests, replay).
    nlohmann::json sorted = v;
    out = pretty ? sorted.dump(2) : sorted.dump();
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!err.empty()) return luaL_error(L, "json.encode: %s", err.c_str());
  if (Redactor* r = derive_redactor(L))
    for (const auto& d : derived) derive_register(L, *r, d, "json.encode");
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int l_json_decode(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  std::string err;
  json v = parse_json(std::string_view(s, n), &err);
  if (v.is_discarded()) return luaL_error(L, "json.decode: %s", err.c_str());
  push_json(L, v);
  return 1;
}

void set_funcs(lua_State* L, const char* module, const luaL_Reg* fns) {
  lua_pushglobaltable(L);
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  lua_setfield(L, -2, module);
  lua_pop(L, 1);
}

}  // namespace

void install_pure_modules(lua_State* L) {
  static const luaL_Reg log_fns[] = {
      {"info", l_info}, {"warn", l_warn}, {"error", l_error}, {"debug", l_debug}, {nullptr, nullptr}};
  set_funcs(L, "log", log_fns);
  static const luaL_Reg json_fns[] = {
      {"encode", l_json_encode}, {"decode", l_json_decode}, {nullptr, nullptr}};
  set_funcs(L, "json", json_fns);
  lua_getglobal(L, "json");
  lua_pushlightuserdata(L, json_null_sentinel());
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  lua_pushglobaltable(L);
  lua_pushcfunction(L, l_info);
  lua_setfield(L, -2, "print");
  lua_pop(L, 1);
}

}  // namespace rb
