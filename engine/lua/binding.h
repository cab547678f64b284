// The Lua face of the registry. Every effect becomes one C closure (`git.checkout`, `exec`) that
// turns its Lua arguments into JSON and hands them to the dispatcher; no binding does anything
// else. This file is the only place errors cross from C++ into Lua.
#pragma once
#include <lua.hpp>

#include <string>

#include "dispatch/registry.h"

namespace rb {

void install_effects(lua_State* L, const Registry& registry);

// Raises a Lua error value: a table { effect =, message =, result =, site = } whose tostring
// is "file:line: message". Never returns. `bug`: the runbook is wrong, not the world (a bad
// argument, a primitive called outside a step): the table gets `bug = true`, and a step it
// ends makes the run exit 2 rather than 1 (see ErrorKind in lua/sandbox.h).
[[noreturn]] void raise_error(lua_State* L, const std::string& effect, const std::string& message,
                              const json& result, const std::string& site, bool bug = false);

}  // namespace rb
