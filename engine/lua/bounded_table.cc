#include "lua/bounded_table.h"

#include "lua/sandbox.h"

namespace rb {
namespace {

// As ltablib.c (Lua 5.4), plus a check of the stop condition every kCheckEvery iterations.
constexpr unsigned kCheckEvery = 4096;
constexpr int kTabR = 1, kTabW = 2, kTabL = 4;
// Bytes of one table slot (a TValue): table.move refuses to touch more slots than the memory
// ceiling could hold, instead of walking 2^63 empty ones.
constexpr size_t kSlotBytes = 16;

struct Ticker {
  lua_State* L;
  unsigned n = 0;
  void tick() {
    if (++n >= kCheckEvery) {
      n = 0;
      Sandbox::from(L)->check_stop(L);
    }
  }
};

bool check_field(lua_State* L, const char* key, int n) {
  lua_pushstring(L, key);
  return lua_rawget(L, -n) != LUA_TNIL;
}

// A table, or something whose metatable provides what `what` asks for.
void check_tab(lua_State* L, int arg, int what) {
  if (lua_type(L, arg) == LUA_TTABLE) return;
  int n = 1;
  if (lua_getmetatable(L, arg) && (!(what & kTabR) || check_field(L, "__index", ++n)) &&
      (!(what & kTabW) || check_field(L, "__newindex", ++n)) &&
      (!(what & kTabL) || check_field(L, "__len", ++n))) {
    lua_pop(L, n);
  } else {
    luaL_checktype(L, arg, LUA_TTABLE);  // raises the usual error
  }
}

lua_Integer aux_getn(lua_State* L, int arg, int what) {
  check_tab(L, arg, what | kTabL);
  return luaL_len(L, arg);
}

int tinsert(lua_State* L) {
  lua_Integer e = aux_getn(L, 1, kTabR | kTabW);
  e = static_cast<lua_Integer>(static_cast<lua_Unsigned>(e) + 1u);  // first empty element
  lua_Integer pos;
  switch (lua_gettop(L)) {
    case 2:
      pos = e;
      break;
    case 3: {
      pos = luaL_checkinteger(L, 2);
      luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u < static_cast<lua_Unsigned>(e), 2,
                    "position out of bounds");
      Ticker t{L};
      for (lua_Integer i = e; i > pos; i--) {  // move elements up (a lying __len: 2^63 of them)
        t.tick();
        lua_geti(L, 1, i - 1);
        lua_seti(L, 1, i);
      }
      break;
    }
    default:
      return luaL_error(L, "wrong number of arguments to 'insert'");
  }
  lua_seti(L, 1, pos);
  return 0;
}

int tremove(lua_State* L) {
  lua_Integer size = aux_getn(L, 1, kTabR | kTabW);
  lua_Integer pos = luaL_optinteger(L, 2, size);
  if (pos != size)
    luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u <= static_cast<lua_Unsigned>(size), 2,
                  "position out of bounds");
  lua_geti(L, 1, pos);
  Ticker t{L};
  for (; pos < size; pos++) {
    t.tick();
    lua_geti(L, 1, pos + 1);
    lua_seti(L, 1, pos);
  }
  lua_pushnil(L);
  lua_seti(L, 1, pos);
  return 1;
}

int tmove(lua_State* L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int tt = !lua_isnoneornil(L, 5) ? 5 : 1;  // the destination table
  check_tab(L, 1, kTabR);
  check_tab(L, tt, kTabW);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
    size_t limit = Sandbox::from(L)->memory_limit();
    lua_Integer most = static_cast<lua_Integer>(limit / kSlotBytes);
    if (n > most)
      return luaL_error(L,
                        "table.move: %I elements are more than the memory ceiling of %d MiB "
                        "can hold (at most %I)",
                        n, static_cast<int>(limit >> 20), most);
    Ticker tk{L};
    if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
      for (lua_Integer i = 0; i < n; i++) {
        tk.tick();
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    } else {
      for (lua_Integer i = n - 1; i >= 0; i--) {
        tk.tick();
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    }
  }
  lua_pushvalue(L, tt);
  return 1;
}

void add_field(lua_State* L, luaL_Buffer* b, lua_Integer i) {
  lua_geti(L, 1, i);
  if (!lua_isstring(L, -1))
    luaL_error(L, "invalid value (at index %I) in table for 'concat'", i);
  luaL_addvalue(b);
}

// A C function as __index (tostring, rawlen) answers every index: the loop would run to the
// memory ceiling, and past the deadline.
int tconcat(lua_State* L) {
  lua_Integer last = aux_getn(L, 1, kTabR);
  size_t lsep;
  const char* sep = luaL_optlstring(L, 2, "", &lsep);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  last = luaL_optinteger(L, 4, last);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  Ticker t{L};
  for (; i < last; i++) {
    t.tick();
    add_field(L, &b, i);
    luaL_addlstring(&b, sep, lsep);
  }
  if (i == last) add_field(L, &b, i);
  luaL_pushresult(&b);
  return 1;
}

// The comparator table.sort is given: counts comparisons (every element read is followed by
// one) and compares as Lua's sort would. Upvalue 1: the runbook's function or nil; upvalue 2:
// the Ticker of the running sort.
int sort_compare(lua_State* L) {
  static_cast<Ticker*>(lua_touserdata(L, lua_upvalueindex(2)))->tick();
  if (lua_isnil(L, lua_upvalueindex(1))) {
    lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);  // inside the runbook's protected call, as Lua's sort calls it
  lua_pushboolean(L, lua_toboolean(L, -1));
  return 1;
}

// Lua's own sort (upvalue 1) with a counting comparator. Anything but a function or nil as the
// comparator goes to it unchanged, so its errors stay Lua's.
int tsort(lua_State* L) {
  int top = lua_gettop(L);
  Ticker t{L};  // lives until the sort returns, the only time the comparator is called
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (top == 1 || (top == 2 && (lua_isnil(L, 3) || lua_isfunction(L, 3)))) {
    if (top == 1) lua_pushnil(L);
    lua_pushlightuserdata(L, &t);
    lua_pushcclosure(L, sort_compare, 2);
  }
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

const luaL_Reg kBounded[] = {{"insert", tinsert}, {"remove", tremove}, {"move", tmove},
                             {"concat", tconcat}, {nullptr, nullptr}};

}  // namespace

void install_bounded_table(lua_State* L, int G) {
  lua_getfield(L, G, "table");
  luaL_setfuncs(L, kBounded, 0);
  lua_getfield(L, -1, "sort");
  lua_pushcclosure(L, tsort, 1);
  lua_setfield(L, -2, "sort");
  lua_pop(L, 1);
}

}  // namespace rb
