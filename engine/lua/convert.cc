#include "lua/convert.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace rb {

void* json_null_sentinel() {
  static char null_marker;
  return &null_marker;
}

json lua_to_json(lua_State* L, int idx, const std::string& what, int depth) {
  idx = lua_absindex(L, idx);
  if (depth > 64) throw ArgError(what + " is nested too deeply (a cycle?)");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) != 0;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == json_null_sentinel()) return nullptr;
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
          arr.push_back(lua_to_json(L, -1, what + "[" + std::to_string(i) + "]", depth + 1));
          lua_pop(L, 1);
        }
        return arr;
      }
      if (!string_keys)
        throw ArgError(what + " mixes list items and named fields (or has non-string keys)");
      json obj = json::object();
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        std::string key = lua_tostring(L, -2);
        obj[key] = lua_to_json(L, -1, what + "." + key, depth + 1);
        lua_pop(L, 1);
      }
      return obj;
    }
    default:
      throw ArgError(what + " cannot be a " + lua_typename(L, lua_type(L, idx)));
  }
}

void push_json(lua_State* L, const json& v) {
  luaL_checkstack(L, 4, "json nesting");
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
      lua_createtable(L, static_cast<int>(v.size()), 0);
      lua_Integer i = 1;
      for (const auto& e : v) {
        push_json(L, e);
        lua_rawseti(L, -2, i++);
      }
      return;
    }
    case json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(v.size()));
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->is_null()) continue;
        push_json(L, *it);
        lua_setfield(L, -2, it.key().c_str());
      }
      return;
    }
  }
}

}  // namespace rb
