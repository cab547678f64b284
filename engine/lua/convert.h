// Lua values <-> JSON, in one place. Tables with keys 1..n become lists, tables with string keys
// become objects; anything else (functions, mixed or cyclic tables) is an ArgError naming `what`.
#pragma once
#include <lua.hpp>

#include <string>

#include "core/json.h"

namespace rb {

// `json.null` in Lua: a value that converts to JSON null where nil cannot stand (inside a list:
// pg.query{ params = { json.null, 5 } }).
void* json_null_sentinel();

json lua_to_json(lua_State* L, int idx, const std::string& what, int depth = 0);
void push_json(lua_State* L, const json& v);

}  // namespace rb
