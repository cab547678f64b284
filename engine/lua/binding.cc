#include "lua/binding.h"

#include <set>

#include "core/error.h"
#include "dispatch/dispatcher.h"
#include "lua/convert.h"
#include "lua/sandbox.h"

namespace rb {
namespace {

const char* kErrorMeta = "runbook.error";

// Raw reads: the runbook may have changed the fields or given the table a metatable of its own.
int error_tostring(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "site");
  lua_rawget(L, 1);
  std::string site = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  lua_pushliteral(L, "message");
  lua_rawget(L, 1);
  std::string msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
  lua_pushstring(L, (site.empty() ? msg : site + " " + msg).c_str());
  return 1;
}

std::string call_site(lua_State* L) {
  luaL_where(L, 1);
  std::string w = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (!w.empty() && w.back() == ' ') w.pop_back();
  return w;  // "file.lua:12:"
}

bool is_table_typed(const Effect& e, const std::string& arg) {
  for (const auto& s : e.args)
    if (s.name == arg) return s.type == ArgType::List || s.type == ArgType::Map || s.type == ArgType::Any;
  return false;
}

// Lua arguments -> one JSON object of named arguments.
json collect_args(lua_State* L, const Effect& e, SteadyTime deadline) {
  int n = lua_gettop(L);
  json named = json::object();
  JsonBudget budget;  // one for all the arguments: they may share a table
  budget.deadline = deadline;
  if (!lua_checkstack(L, 4)) throw ArgError("bad arguments to '" + e.name + "' (too many)");
  auto merge_table = [&](int idx) {
    idx = lua_absindex(L, idx);
    json array = json::array();
    lua_Integer len = static_cast<lua_Integer>(lua_rawlen(L, idx));
    for (lua_Integer i = 1; i <= len; ++i) {
      lua_rawgeti(L, idx, i);
      array.push_back(lua_to_json(L, -1, e.name + " argument #" + std::to_string(i), &budget));
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string key = lua_tostring(L, -2);
        named[key] = lua_to_json(L, -1, "argument '" + key + "' to '" + e.name + "'", &budget);
      } else if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > len) {
        lua_pop(L, 2);
        throw ArgError("bad argument #1 to '" + e.name + "' (table keys must be names or 1..n)");
      }
      lua_pop(L, 1);
    }
    if (!array.empty()) {
      if (!e.rest.empty()) {
        named[e.rest] = array;
      } else if (!e.positional.empty() && array.size() <= e.positional.size()) {
        for (size_t i = 0; i < array.size(); ++i) named[e.positional[i]] = array[i];
      } else {
        throw ArgError("bad argument #1 to '" + e.name + "' (named fields expected, got a list)");
      }
    }
  };

  if (n == 1 && lua_type(L, 1) == LUA_TTABLE &&
      (e.positional.empty() || !is_table_typed(e, e.positional[0]))) {
    merge_table(1);
    return named;
  }
  for (int i = 1; i <= n; ++i) {
    size_t slot = static_cast<size_t>(i - 1);
    bool last = i == n;
    if (last && lua_type(L, i) == LUA_TTABLE &&
        (slot >= e.positional.size() || !is_table_typed(e, e.positional[slot]))) {
      merge_table(i);  // trailing options: fs.backup(path, { dir = ... })
      continue;
    }
    if (slot >= e.positional.size())
      throw ArgError("bad argument #" + std::to_string(i) + " to '" + e.name + "' (" +
                     (e.positional.empty() ? std::string("it takes a table of named arguments")
                                           : "it takes at most " +
                                                 std::to_string(e.positional.size()) +
                                                 " positional arguments") +
                     ")");
    if (lua_isnil(L, i)) continue;
    named[e.positional[slot]] =
        lua_to_json(L, i, "argument '" + e.positional[slot] + "' to '" + e.name + "'", &budget);
  }
  return named;
}

int call_effect(lua_State* L) {
  const auto* e = static_cast<const Effect*>(lua_touserdata(L, lua_upvalueindex(1)));
  Sandbox* sb = Sandbox::from(L);
  int top = lua_gettop(L);
  std::string site = call_site(L);

  // Everything C++ happens inside this block; Lua errors are raised only after it, so no C++
  // exception meets Lua's unwinding and every destructor has run.
  std::string fatal;    // the step cannot go on (interrupt, deadline, divergence)
  std::string failure;  // the effect failed: raise a catchable error
  bool bug = false;     // ... because the runbook is wrong (exit 2, not 1)
  json result;
  bool have_result = false;
  try {
    if (!sb->killed().empty()) {
      fatal = sb->killed();
    } else if (!sb->in_step || !sb->dispatcher) {
      failure = e->name + " was called outside a step; effects run only inside step(...)";
      bug = true;
    } else {
      json args = collect_args(L, *e, sb->dispatcher->deadline());
      CallResult r = sb->dispatcher->call(*e, std::move(args), site);
      if (r.ok) {
        result = std::move(r.result);
        have_result = true;
      } else {
        failure = r.error;
        bug = r.bad_argument;
        result = std::move(r.result);
      }
    }
  } catch (const ArgError& err) {
    failure = err.what();
    bug = true;
  } catch (const Divergence& err) {
    fatal = err.what();
  } catch (const RehearsalLoop& err) {
    fatal = err.what();
    sb->unknown_loop = err.what();
  } catch (const Interrupted& err) {
    fatal = "interrupted";
  } catch (const DeadlineExceeded& err) {
    fatal = sb->deadline_what().empty() ? err.what() : sb->deadline_what() + " (in " + e->name + ")";
  } catch (const std::exception& err) {
    failure = e->name + ": " + err.what();
  }
  lua_settop(L, top);  // a conversion that failed half-way leaves its keys and values behind
  if (!fatal.empty()) {
    sb->kill(fatal);
    raise_error(L, e->name, fatal, nullptr, site);
  }
  if (!have_result) raise_error(L, e->name, failure, result, site, bug);
  push_json(L, result);
  return 1;
}

}  // namespace

void raise_error(lua_State* L, const std::string& effect, const std::string& message,
                 const json& result, const std::string& site, bool bug) {
  luaL_checkstack(L, 4, "raising an error");
  lua_createtable(L, 0, 5);
  if (bug) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "bug");
  }
  lua_pushstring(L, effect.c_str());
  lua_setfield(L, -2, "effect");
  lua_pushstring(L, message.c_str());
  lua_setfield(L, -2, "message");
  lua_pushstring(L, site.c_str());
  lua_setfield(L, -2, "site");
  push_json(L, result);
  lua_setfield(L, -2, "result");
  if (luaL_newmetatable(L, kErrorMeta)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    // Shared by every error: out of the runbook's reach, or a __gc added to it would be
    // registered with the next error the host raises.
    lua_pushliteral(L, "runbook.error");
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  lua_error(L);
  std::abort();  // lua_error does not return
}

namespace {

// __index of a module table: `fs.bakup` is a runbook bug, named with what the module has (its
// primitives and the prelude's Lua helpers alike), not a nil to call.
int strict_module(lua_State* L) {
  const char* module = lua_tostring(L, lua_upvalueindex(1));
  std::string name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2);
  std::set<std::string> has;
  lua_pushnil(L);
  while (lua_next(L, 1) && has.size() < 200) {
    if (lua_type(L, -2) == LUA_TSTRING) has.insert(lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  std::string list;
  for (const auto& n : has) list += (list.empty() ? "" : ", ") + n;
  luaL_where(L, 1);  // where the runbook read it (level 0 is this metamethod)
  std::string where = lua_tostring(L, -1);
  std::string msg = where + std::string(module) + "." + name + " is not a primitive (" + module +
                    " has: " + (list.empty() ? std::string("nothing") : list) + ")";
  lua_pushlstring(L, msg.data(), msg.size());
  return lua_error(L);
}

void make_strict(lua_State* L, int table, const std::string& module) {
  table = lua_absindex(L, table);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, module.c_str());
  lua_pushcclosure(L, strict_module, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, table);
}

}  // namespace

void install_effects(lua_State* L, const Registry& registry) {
  // Globals are strict; rawget avoids the undefined-global error while building.
  for (const Effect* e : registry.all()) {
    auto dot = e->name.find('.');
    lua_pushlightuserdata(L, const_cast<Effect*>(e));
    lua_pushcclosure(L, call_effect, 1);
    if (dot == std::string::npos) {
      lua_pushglobaltable(L);
      lua_insert(L, -2);
      lua_setfield(L, -2, e->name.c_str());
      lua_pop(L, 1);
      continue;
    }
    std::string module = e->name.substr(0, dot);
    lua_pushglobaltable(L);
    lua_pushstring(L, module.c_str());
    lua_rawget(L, -2);
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      make_strict(L, -1, module);
      lua_pushstring(L, module.c_str());
      lua_pushvalue(L, -2);
      lua_rawset(L, -4);
    }
    // stack: fn, G, module
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, e->name.substr(dot + 1).c_str());
    lua_pop(L, 3);
  }
}

}  // namespace rb
