// Lua modules that touch nothing outside the run: log (and print), json. They live here, not in
// the effect registry, because they have no effect on the world to plan, skip or replay; log
// lines still go to the journal through the dispatcher.
#pragma once
#include <lua.hpp>

namespace rb {

void install_pure_modules(lua_State* L);

}  // namespace rb
