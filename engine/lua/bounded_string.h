// string.find, match, gmatch, gsub and rep with Lua 5.4's exact semantics, but bounded: the
// matcher checks the sandbox's stop condition (deadline, Ctrl-C, memory) every few thousand
// steps, a plain find is linear, and rep refuses a result the memory ceiling cannot hold. Lua's
// own versions run in C, where the count hook never fires, so a backtracking pattern or
// string.rep("", math.maxinteger) would outlive the step deadline and Ctrl-C.
#pragma once
#include <lua.hpp>

namespace rb {

// Replaces those functions in the table G.string (G: an absolute or relative stack index of
// the sandbox's globals). Needs the state to belong to a Sandbox.
void install_bounded_string(lua_State* L, int G);

}  // namespace rb
