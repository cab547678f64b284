#include "lua/convert.h"

#include "core/interrupt.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/unknown.h"
#include "lua/sandbox.h"

namespace rb {

void* json_null_sentinel() {
  static char null_marker;
  return &null_marker;
}

namespace {

// ---- Unknown values ----------------------------------------------------------------------
// A full userdata whose user value is the reason. Every use of it goes through a metamethod,
// which tells the sandbox that the step used an unknown: fields are unknowns too (so `h.status`
// of an unknown answer is unknown), integer indexes are nil (an ipairs loop ends), a `for` over
// one ends, arithmetic gives an unknown, ordering raises, tostring and .. print "(unknown: why)".

const char* kUnknownMeta = "runbook.unknown";

std::string touch(lua_State* L, int idx) {
  std::string why;
  if (lua_type(L, idx) == LUA_TUSERDATA && lua_getiuservalue(L, idx, 1) == LUA_TSTRING)
    why = lua_tostring(L, -1);
  if (lua_type(L, idx) == LUA_TUSERDATA) lua_pop(L, 1);
  if (Sandbox* sb = Sandbox::from(L)) {
    if (sb->unknown_touched++ == 0 || sb->unknown_reason.empty()) sb->unknown_reason = why;
  }
  return why;
}

bool is_unknown_at(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return false;
  luaL_getmetatable(L, kUnknownMeta);
  bool same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

std::string reason_at(lua_State* L, int idx) {
  std::string why;
  if (lua_getiuservalue(L, idx, 1) == LUA_TSTRING) why = lua_tostring(L, -1);
  lua_pop(L, 1);
  return why;
}

int unknown_of_operands(lua_State* L);

void install_unknown_meta(lua_State* L);

void push_unknown(lua_State* L, const std::string& why) {
  luaL_checkstack(L, 4, "unknown value");
  lua_newuserdatauv(L, 0, 1);
  lua_pushlstring(L, why.data(), why.size());
  lua_setiuservalue(L, -2, 1);
  install_unknown_meta(L);
  lua_setmetatable(L, -2);
}

// The first unknown operand's reason (either side of a binary operator may be the unknown).
std::string operand_reason(lua_State* L) {
  for (int i = 1; i <= 2; ++i)
    if (is_unknown_at(L, i)) return touch(L, i);
  return "";
}

int unknown_index(lua_State* L) {
  std::string why = touch(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);  // ipairs and t[1] end at once
    return 1;
  }
  push_unknown(L, why);
  return 1;
}

int unknown_of_operands(lua_State* L) {
  push_unknown(L, operand_reason(L));
  return 1;
}

int unknown_tostring(lua_State* L) {
  std::string why = touch(L, 1);
  lua_pushstring(L, ("(unknown: " + (why.empty() ? std::string("not known in a rehearsal") : why) +
                     ")").c_str());
  return 1;
}

int unknown_concat(lua_State* L) {
  std::string why = operand_reason(L);
  std::string text;
  for (int i = 1; i <= 2; ++i) {
    if (is_unknown_at(L, i)) {
      text += "(unknown: " + reason_at(L, i) + ")";
    } else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER) {
      size_t n = 0;
      const char* p = lua_tolstring(L, i, &n);
      text.append(p, n);
    } else {
      return luaL_error(L, "attempt to concatenate a %s value with an unknown (%s)",
                        luaL_typename(L, i), why.c_str());
    }
  }
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int unknown_compare(lua_State* L) {
  std::string why = operand_reason(L);
  return luaL_error(L, "cannot compare a value not known in a rehearsal (%s)", why.c_str());
}

int unknown_eq(lua_State* L) {
  operand_reason(L);
  lua_pushboolean(L, lua_rawequal(L, 1, 2));
  return 1;
}

int unknown_len(lua_State* L) {
  touch(L, 1);
  lua_pushinteger(L, 0);
  return 1;
}

int unknown_newindex(lua_State* L) {
  touch(L, 1);
  return 0;
}

// Calling an unknown (a method of an unknown string: `h.body:match(...)`) gives an unknown; as
// the iterator of a generic `for` (called with no state: `for l in h.body:gmatch(...)`) it gives
// nil, so the loop ends at once instead of spinning on unknowns.
int unknown_call(lua_State* L) {
  std::string why = touch(L, 1);
  if (lua_gettop(L) < 2 || lua_isnil(L, 2)) {
    lua_pushnil(L);
    return 1;
  }
  push_unknown(L, why);
  return 1;
}

void install_unknown_meta(lua_State* L) {
  if (!luaL_newmetatable(L, kUnknownMeta)) return;
  const luaL_Reg meta[] = {{"__index", unknown_index},     {"__newindex", unknown_newindex},
                           {"__tostring", unknown_tostring}, {"__concat", unknown_concat},
                           {"__eq", unknown_eq},           {"__lt", unknown_compare},
                           {"__le", unknown_compare},      {"__len", unknown_len},
                           {"__call", unknown_call},       {"__add", unknown_of_operands},
                           {"__sub", unknown_of_operands}, {"__mul", unknown_of_operands},
                           {"__div", unknown_of_operands}, {"__mod", unknown_of_operands},
                           {"__pow", unknown_of_operands}, {"__unm", unknown_of_operands},
                           {"__idiv", unknown_of_operands}, {"__band", unknown_of_operands},
                           {"__bor", unknown_of_operands}, {"__bxor", unknown_of_operands},
                           {"__shl", unknown_of_operands}, {"__shr", unknown_of_operands},
                           {"__bnot", unknown_of_operands}, {nullptr, nullptr}};
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, "runbook.unknown");
  lua_setfield(L, -2, "__metatable");
  lua_pushliteral(L, "unknown");
  lua_setfield(L, -2, "__name");
}

// `level` counts the tables enclosing the value at idx (0 at the top). `what` names the value
// (argument 'json' to 'http.post'[2].name), `root` the whole (argument 'json' to 'http.post').
json to_json(lua_State* L, int idx, const std::string& root, const std::string& what, int level,
             JsonBudget& budget) {
  idx = lua_absindex(L, idx);
  if (budget.values == 0)
    throw ArgError(root + " holds more than " + std::to_string(kJsonMaxValues) +
                   " values (json: the same table many times over?)");
  --budget.values;
  if ((budget.values & 0xfff) == 0) {
    if (interrupt_requested()) throw Interrupted("interrupted");
    if (budget.deadline != SteadyTime::max() && std::chrono::steady_clock::now() > budget.deadline)
      throw DeadlineExceeded("the step's deadline passed while converting " + root);
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) != 0;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == json_null_sentinel()) return nullptr;
      throw ArgError(what + " cannot be a userdata");
    case LUA_TUSERDATA:
      if (!lua_checkstack(L, 4)) throw ArgError(what + " is too large for the Lua stack");
      if (is_unknown_at(L, idx)) return unknown_value(reason_at(L, idx));
      throw ArgError(what + " cannot be a userdata");
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return static_cast<int64_t>(lua_tointeger(L, idx));
      {
        double d = lua_tonumber(L, idx);
        if (!std::isfinite(d)) throw ArgError(what + " is not a finite number");
        return d;
      }
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      return std::string(s, n);
    }
    case LUA_TTABLE: {
      if (level >= kJsonMaxDepth)
        throw ArgError(root + " is not JSON (" + json_too_deep() + "; a cycle?)");
      // Each level holds a key and a value on the stack while it descends; the 20 slots a C
      // function is given run out at level 10 without this.
      if (!lua_checkstack(L, 4)) throw ArgError(what + " is too large for the Lua stack");
      // First pass: is it a list (keys exactly 1..n)?
      lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
      size_t count = 0;
      bool string_keys = true;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        ++count;
        if (lua_type(L, -2) != LUA_TSTRING) string_keys = false;
        lua_pop(L, 1);
      }
      if (count == 0) return json::object();
      if (n > 0 && static_cast<size_t>(n) == count) {
        json arr = json::array();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, idx, i);
          // The path is only built for the top levels: 200 of them make an unreadable message.
          arr.push_back(to_json(L, -1, root,
                                level < 8 ? what + "[" + std::to_string(i) + "]" : what, level + 1,
                                budget));
          lua_pop(L, 1);
        }
        return arr;
      }
      if (!string_keys)
        throw ArgError(what + " mixes list items and named fields (or has non-string keys)");
      json obj = json::object();
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        size_t klen = 0;
        const char* k = lua_tolstring(L, -2, &klen);  // a string: the first pass checked
        std::string key(k, klen);
        json member = to_json(L, -1, root, level < 8 ? what + "." + key : what, level + 1, budget);
        append_member(obj, std::move(key), std::move(member));  // Lua's keys are unique
        lua_pop(L, 1);
      }
      return obj;
    }
    default:
      throw ArgError(what + " cannot be a " + lua_typename(L, lua_type(L, idx)));
  }
}

// `level` counts the containers down to this value's, itself included (1 at the top).
void push_value(lua_State* L, const json& v, int level) {
  luaL_checkstack(L, 3, json_too_deep());
  switch (v.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      lua_pushnil(L);
      return;
    case json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      return;
    case json::value_t::number_integer:
      lua_pushinteger(L, static_cast<lua_Integer>(v.get<int64_t>()));
      return;
    case json::value_t::number_unsigned:
      lua_pushinteger(L, static_cast<lua_Integer>(v.get<uint64_t>()));
      return;
    case json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      return;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case json::value_t::binary:
      lua_pushnil(L);
      return;
    case json::value_t::array: {
      if (level > kJsonMaxDepth) luaL_error(L, "%s", json_too_deep());
      lua_createtable(L, static_cast<int>(std::min<size_t>(v.size(), INT32_MAX)), 0);
      lua_Integer i = 1;
      for (const auto& e : v) {
        push_value(L, e, level + 1);
        lua_rawseti(L, -2, i++);
      }
      return;
    }
    case json::value_t::object: {
      if (level > kJsonMaxDepth) luaL_error(L, "%s", json_too_deep());
      if (is_unknown(v)) {
        push_unknown(L, unknown_why(v));
        return;
      }
      lua_createtable(L, 0, static_cast<int>(std::min<size_t>(v.size(), INT32_MAX)));
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->is_null()) continue;
        lua_pushlstring(L, it.key().data(), it.key().size());
        push_value(L, *it, level + 1);
        lua_rawset(L, -3);
      }
      return;
    }
  }
}

}  // namespace

json lua_to_json(lua_State* L, int idx, const std::string& what, JsonBudget* budget) {
  JsonBudget own;
  return to_json(L, idx, what, what, 0, budget ? *budget : own);
}

void push_json(lua_State* L, const json& v) { push_value(L, v, 1); }

}  // namespace rb
