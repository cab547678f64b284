// Lua values <-> JSON, in one place. Tables with keys 1..n become lists, tables with string keys
// become objects; anything else (functions, mixed or cyclic tables) is an ArgError naming `what`.
// Both directions are bounded: kJsonMaxDepth levels of nesting ("json: nested deeper than 200
// levels") and, from Lua, a number of values, since a table can hold the same table many times
// over and a DAG of 40 levels would otherwise expand to 2^40 values.
#pragma once
#include "core/clock.h"
#include <lua.hpp>

#include <string>

#include "core/json.h"

namespace rb {

// `json.null` in Lua: a value that converts to JSON null where nil cannot stand (inside a list:
// pg.query{ params = { json.null, 5 } }).
void* json_null_sentinel();

constexpr size_t kJsonMaxValues = 1'000'000;

// How many values one conversion (or several that share it: an effect's arguments) may still
// produce.
// One conversion's limits: a count of values, and the step's deadline (a conversion of a table
// shared at every level is a million values of work; it must end with its step, and on Ctrl-C).
struct JsonBudget {
  size_t values = kJsonMaxValues;
  SteadyTime deadline = SteadyTime::max();
};

// Throws ArgError naming `what` for what JSON cannot hold, too deep a nesting or too many values.
json lua_to_json(lua_State* L, int idx, const std::string& what, JsonBudget* budget = nullptr);
// Raises a Lua error (so: call it only where Lua may raise) if `v` nests deeper than
// kJsonMaxDepth or the Lua stack cannot grow.
void push_json(lua_State* L, const json& v);

}  // namespace rb
