#include "lua/bounded_table.h"

#include <algorithm>
#include <climits>
#include <string>
#include <string_view>
#include <vector>
#include <ctime>

#include "dispatch/redact.h"
#include "lua/derive.h"
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
    // Argument #1, as Lua 5.4.4 says (sic).
    luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u <= static_cast<lua_Unsigned>(size), 1,
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

size_t add_field(lua_State* L, luaL_Buffer* b, lua_Integer i) {
  lua_geti(L, 1, i);
  if (!lua_isstring(L, -1))
    luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1), i);
  size_t len = 0;
  lua_tolstring(L, -1, &len);
  luaL_addvalue(b);
  return len;
}

// The pieces of a secret joined with a separator (table.concat({ t:sub(1, 3), t:sub(4, 6) },
// "-"), or each of its characters with " "): a secret in the items joined without the
// separator that spans two of them is registered as it is in the result, separators included.
void derive_concat(lua_State* L, Redactor& r, const std::vector<size_t>& lens, size_t lsep) {
  size_t rl;
  const char* res = lua_tolstring(L, -1, &rl);
  std::string joined;
  std::vector<size_t> starts;  // of each item in `joined`
  joined.reserve(rl);
  size_t at = 0;
  for (size_t k = 0; k < lens.size(); ++k) {
    starts.push_back(joined.size());
    joined.append(res + at, lens[k]);
    at += lens[k] + lsep;
  }
  auto item_of = [&](size_t pos) {
    return static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), pos) - starts.begin()) - 1;
  };
  for (const auto& [a, b] : r.covered(joined)) {
    size_t ka = item_of(a), kb = item_of(b - 1);
    if (ka == kb) continue;  // inside one item: in the result unchanged
    size_t from = a + ka * lsep, to = b + kb * lsep;
    derive_register(L, r, std::string_view(res + from, to - from), "table.concat");
  }
}

// A C function as __index (tostring, rawlen) answers every index: the loop would run to the
// memory ceiling, and past the deadline.
int tconcat(lua_State* L) {
  lua_Integer last = aux_getn(L, 1, kTabR);
  size_t lsep;
  const char* sep = luaL_optlstring(L, 2, "", &lsep);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  last = luaL_optinteger(L, 4, last);
  Redactor* r = lsep > 0 ? derive_redactor(L) : nullptr;
  std::vector<size_t> lens;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  Ticker t{L};
  for (; i < last; i++) {
    t.tick();
    size_t len = add_field(L, &b, i);
    if (r) lens.push_back(len);
    luaL_addlstring(&b, sep, lsep);
  }
  if (i == last) {
    size_t len = add_field(L, &b, i);
    if (r) lens.push_back(len);
  }
  luaL_pushresult(&b);
  if (r && lens.size() > 1) derive_concat(L, *r, lens, lsep);
  return 1;
}

// table.sort as ltablib.c's: the same quicksort, pivots and errors, with every comparison
// (each element read is followed by one) counted.
using IdxT = unsigned int;
constexpr IdxT kRanLimit = 100u;  // below it the pivot is the middle element

struct Sorter {
  lua_State* L;
  Ticker ticker{L};

  void set2(IdxT i, IdxT j) {
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
  }

  bool less(int a, int b) {
    ticker.tick();
    if (lua_isnil(L, 2)) return lua_compare(L, a, b, LUA_OPLT);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a - 1);  // -1 for the function
    lua_pushvalue(L, b - 2);  // -2 for the function and a
    lua_call(L, 2, 1);        // inside the runbook's protected call, as Lua's sort calls it
    bool res = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return res;
  }

  IdxT partition(IdxT lo, IdxT up) {
    IdxT i = lo, j = up - 1;  // a[lo .. i] <= P <= a[j .. up], a[up - 1] == P
    for (;;) {
      while (lua_geti(L, 1, ++i), less(-1, -2)) {
        if (i == up - 1) luaL_error(L, "invalid order function for sorting");
        lua_pop(L, 1);
      }
      while (lua_geti(L, 1, --j), less(-3, -1)) {
        if (j < i) luaL_error(L, "invalid order function for sorting");
        lua_pop(L, 1);
      }
      if (j < i) {
        lua_pop(L, 1);
        set2(up - 1, i);
        return i;
      }
      set2(i, j);
    }
  }

  static IdxT choose_pivot(IdxT lo, IdxT up, unsigned rnd) {
    IdxT r4 = (up - lo) / 4;
    return rnd % (r4 * 2) + (lo + r4);
  }

  static unsigned randomize_pivot() {
    return static_cast<unsigned>(std::clock()) + static_cast<unsigned>(std::time(nullptr));
  }

  void sort(IdxT lo, IdxT up, unsigned rnd) {
    while (lo < up) {  // a loop for the tail call
      lua_geti(L, 1, lo);
      lua_geti(L, 1, up);
      if (less(-1, -2))
        set2(lo, up);
      else
        lua_pop(L, 2);
      if (up - lo == 1) break;
      IdxT p = (up - lo < kRanLimit || rnd == 0) ? (lo + up) / 2 : choose_pivot(lo, up, rnd);
      lua_geti(L, 1, p);
      lua_geti(L, 1, lo);
      if (less(-2, -1)) {
        set2(p, lo);
      } else {
        lua_pop(L, 1);
        lua_geti(L, 1, up);
        if (less(-1, -2))
          set2(p, up);
        else
          lua_pop(L, 2);
      }
      if (up - lo == 2) break;
      lua_geti(L, 1, p);
      lua_pushvalue(L, -1);
      lua_geti(L, 1, up - 1);
      set2(p, up - 1);
      p = partition(lo, up);
      IdxT n;
      if (p - lo < up - p) {  // recurse into the shorter side: depth log2(n)
        sort(lo, p - 1, rnd);
        n = p - lo;
        lo = p + 1;
      } else {
        sort(p + 1, up, rnd);
        n = up - p;
        up = p - 1;
      }
      if ((up - lo) / 128 > n) rnd = randomize_pivot();  // too imbalanced
    }
  }
};

int tsort(lua_State* L) {
  lua_Integer n = aux_getn(L, 1, kTabR | kTabW);
  if (n > 1) {
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    Sorter{L}.sort(1, static_cast<IdxT>(n), 0);
  }
  return 0;
}

const luaL_Reg kBounded[] = {{"insert", tinsert}, {"remove", tremove}, {"move", tmove},
                             {"concat", tconcat}, {"sort", tsort},     {nullptr, nullptr}};

}  // namespace

void install_bounded_table(lua_State* L, int G) {
  lua_getfield(L, G, "table");
  luaL_setfuncs(L, kBounded, 0);
  lua_pop(L, 1);
}

}  // namespace rb
