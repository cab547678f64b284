#include "lua/derive.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "dispatch/dispatcher.h"
#include "dispatch/redact.h"
#include "lua/sandbox.h"

namespace rb {
namespace {

// Subjects at least this long have their secret ranges cached (one, the last): a loop of
// s:sub(i, i + 9) or a gmatch over a long secret text would otherwise search it every time.
constexpr size_t kCacheFrom = 1024;
// rep's output holds its inputs' bytes unchanged (redaction sees the secret in it); it is also
// registered whole (so that a part of it is a secret too) when not larger than this.
constexpr size_t kRepWhole = 1u << 20;
const char* kCacheKey = "runbook.derive_subject";

std::string_view view(lua_State* L, int idx) {
  size_t n = 0;
  const char* s = lua_tolstring(L, idx, &n);
  return s ? std::string_view(s, n) : std::string_view();
}

// string.upper, string.lower (upvalue 2 = 1: each byte stays where it was) and string.reverse
// (2: byte i goes to n - 1 - i), upvalue 1 the library's function, called in this frame so
// that its errors name the function as the runbook called it.
int d_bytewise(lua_State* L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
  int nres = orig(L);
  Redactor* r = derive_redactor(L);
  if (!r || nres != 1) return nres;
  std::string_view in = view(L, 1), out = view(L, -1);
  if (out.size() != in.size()) return nres;
  bool reverse = lua_tointeger(L, lua_upvalueindex(2)) == 2;
  const char* fn = reverse ? "string.reverse" : "string.upper/lower";
  for (const auto& [a, b] : r->covered(in)) {
    std::string_view piece = out.substr(reverse ? in.size() - b : a, b - a);
    if (piece != in.substr(a, b - a)) derive_register(L, *r, piece, fn);
  }
  return nres;
}

size_t posrelat_start(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<size_t>(pos) + 1;
}

size_t end_pos(lua_Integer pos, size_t len) {
  if (pos > static_cast<lua_Integer>(len)) return len;
  if (pos >= 0) return static_cast<size_t>(pos);
  if (pos < -static_cast<lua_Integer>(len)) return 0;
  return len + static_cast<size_t>(pos) + 1;
}

// string.sub as lstrlib.c's, registering the part of a secret it cuts out (4 bytes or more).
int d_sub(lua_State* L) {
  size_t l;
  const char* s = luaL_checklstring(L, 1, &l);
  size_t start = posrelat_start(luaL_checkinteger(L, 2), l);
  size_t end = end_pos(luaL_optinteger(L, 3, -1), l);
  if (start > end) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushlstring(L, s + start - 1, end - start + 1);
  if (Redactor* r = derive_redactor(L)) derive_window(L, *r, 1, start - 1, end - start + 1, "string.sub");
  return 1;
}

// string.rep (the bounded one, upvalue 1).
int d_rep(lua_State* L) {
  luaL_checkstring(L, 1);
  luaL_checkinteger(L, 2);
  luaL_optstring(L, 3, "");
  lua_settop(L, 3);
  lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
  int nres = orig(L);
  Redactor* r = derive_redactor(L);
  if (!r || nres != 1) return nres;
  std::string_view out = view(L, -1);
  if (out.size() <= kRepWhole && (r->contains(view(L, 1)) || r->contains(view(L, 3))))
    derive_register(L, *r, out, "string.rep");
  return nres;
}

// string.format: its output is registered whole when a string holding a secret goes through a
// conversion that changes its bytes (%q, %.5s, %-20s, %x of a numeric string, ...), or when the
// format itself holds one and a '%'. A plain %s copies the string unchanged.
int d_format(lua_State* L) {
  luaL_checkstring(L, 1);
  int n = lua_gettop(L);
  lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
  int nres = orig(L);
  Redactor* r = derive_redactor(L);
  if (!r || nres != 1) return nres;
  std::string_view fmt = view(L, 1);
  bool whole = fmt.find('%') != std::string_view::npos && r->contains(fmt);
  static const char kFlags[] = "-+ #0123456789.";
  int arg = 1;
  for (size_t i = 0; i < fmt.size() && !whole; ++i) {
    if (fmt[i] != '%') continue;
    if (++i < fmt.size() && fmt[i] == '%') continue;
    size_t spec = i;
    while (i < fmt.size() && std::memchr(kFlags, fmt[i], sizeof kFlags - 1)) ++i;
    if (i >= fmt.size() || ++arg > n) break;
    bool plain = i == spec && fmt[i] == 's';
    if (!plain && lua_type(L, arg) == LUA_TSTRING && r->contains(view(L, arg))) whole = true;
  }
  if (whole) derive_register(L, *r, view(L, -1), "string.format");
  return nres;
}

struct Wrapped {
  const char* name;
  lua_CFunction fn;
  int kind;
};

}  // namespace

Redactor* derive_redactor(lua_State* L) {
  Sandbox* sb = Sandbox::from(L);
  if (!sb || !sb->dispatcher) return nullptr;
  Redactor& r = sb->dispatcher->redactor();
  return r.empty() ? nullptr : &r;
}

void derive_register(lua_State* L, Redactor& r, std::string_view value, const char* fn) {
  if (!r.add_derived(value))
    luaL_error(L,
               "%s: this run has derived more than %d values (or %d MiB) from its secrets, "
               "the most redaction keeps track of; derive fewer copies of secrets",
               fn, static_cast<int>(Redactor::kMaxDerived),
               static_cast<int>(Redactor::kMaxDerivedBytes >> 20));
}

std::vector<std::pair<size_t, size_t>> derive_covered(lua_State* L, Redactor& r, int idx) {
  std::string_view s = view(L, idx);
  if (s.size() < kCacheFrom) return r.covered(s);
  idx = lua_absindex(L, idx);
  Sandbox* sb = Sandbox::from(L);
  luaL_checkstack(L, 2, "secret ranges");
  lua_getfield(L, LUA_REGISTRYINDEX, kCacheKey);
  // The same object (its bytes at the same address) is known at once; an equal copy costs a
  // comparison, once: it then replaces the kept one.
  bool same_object = lua_type(L, -1) == LUA_TSTRING && lua_tostring(L, -1) == s.data();
  bool same = same_object || lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  if (same && !same_object) {
    lua_pushvalue(L, idx);
    lua_setfield(L, LUA_REGISTRYINDEX, kCacheKey);
  }
  if (same && sb->derive_owner == &r) {
    auto& c = sb->derive_ranges;
    // Secrets registered since cannot cover more of a subject that is covered whole.
    if (sb->derive_gen == r.size() || (c.size() == 1 && c[0].first == 0 && c[0].second == s.size())) {
      sb->derive_gen = r.size();
      return c;
    }
  }
  auto out = r.covered(s);
  lua_pushvalue(L, idx);  // kept alive, so that the same object is recognised
  lua_setfield(L, LUA_REGISTRYINDEX, kCacheKey);
  sb->derive_ranges = out;
  sb->derive_owner = &r;
  sb->derive_gen = r.size();
  return out;
}

void derive_window(lua_State* L, Redactor& r, int idx, size_t off, size_t len, const char* fn) {
  if (len < Redactor::kMinDerived) return;
  std::string_view s = view(L, idx);
  for (const auto& [a, b] : derive_covered(L, r, idx)) {
    if (a >= off + len) break;
    size_t lo = std::max(a, off), hi = std::min(b, off + len);
    if (hi > lo && hi - lo >= Redactor::kMinDerived) derive_register(L, r, s.substr(lo, hi - lo), fn);
  }
}

void install_derive(lua_State* L, int G) {
  G = lua_absindex(L, G);
  static const Wrapped kWrapped[] = {{"upper", d_bytewise, 1}, {"lower", d_bytewise, 1},
                                     {"reverse", d_bytewise, 2}, {"rep", d_rep, 0},
                                     {"format", d_format, 0}};
  lua_getfield(L, G, "string");
  for (const auto& w : kWrapped) {
    lua_getfield(L, -1, w.name);
    lua_pushinteger(L, w.kind);
    lua_pushcclosure(L, w.fn, 2);
    lua_setfield(L, -2, w.name);
  }
  lua_pushcfunction(L, d_sub);
  lua_setfield(L, -2, "sub");
  lua_pop(L, 1);
}

}  // namespace rb
