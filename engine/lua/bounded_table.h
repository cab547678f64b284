// table.move, insert, remove, concat and sort with Lua 5.4's semantics, but checking the
// sandbox's stop condition as they loop: their loops run in C, where the count hook never fires,
// and a lying __len or a C function as __index makes them run for 2^63 iterations.
#pragma once
#include <lua.hpp>

namespace rb {

// Replaces those functions in the table G.table. Needs the state to belong to a Sandbox.
void install_bounded_table(lua_State* L, int G);

}  // namespace rb
