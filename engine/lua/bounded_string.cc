#include "lua/bounded_string.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "dispatch/redact.h"
#include "lua/derive.h"
#include "lua/sandbox.h"

namespace rb {
namespace {

// Pattern matching as lstrlib.c (Lua 5.4) defines it: the same grammar, the same recursion
// limit, the same results and error messages (tests/string_bounds_test.cc compares them with
// Lua's own on generated patterns). The difference is `tick`, which every unit of work passes.

constexpr int kMaxCaptures = 32;  // lstrlib.c's LUA_MAXCAPTURES
constexpr int kMaxDepth = 200;    // lstrlib.c's MAXCCALLS: "pattern too complex" beyond it
constexpr ptrdiff_t kCapUnfinished = -1;
constexpr ptrdiff_t kCapPosition = -2;
constexpr char kEsc = '%';
constexpr const char* kSpecials = "^$*+?.([%-";
constexpr size_t kMaxSize = INT_MAX;  // lstrlib.c's MAXSIZE on a 64-bit machine
// Matcher steps between two checks of the deadline: a check reads the clock (~20 ns); 4096
// steps take a few microseconds, so a stop is noticed at once and costs nothing measurable.
constexpr unsigned kCheckEvery = 4096;
// A plain find searches this much of the subject between two checks.
constexpr size_t kPlainWindow = 4u << 20;  // glibc's memmem: ~15 ns a byte at worst

inline int uchar(char c) { return static_cast<unsigned char>(c); }

// Counts work and checks the sandbox's stop condition (which raises) every kCheckEvery units.
struct Budget {
  lua_State* L;
  unsigned steps = 0;
  void tick(unsigned n = 1) {
    steps += n;
    if (steps >= kCheckEvery) {
      steps = 0;
      Sandbox::from(L)->check_stop(L);
    }
  }
};

struct Matcher {
  const char* src_init;
  const char* src_end;
  const char* p_end;
  lua_State* L;
  Budget budget;
  int depth;
  int level;
  int subject = 1;  // the subject's stack index (an upvalue for gmatch): captures of a secret
                    // are registered (lua/derive.h)
  struct {
    const char* init;
    ptrdiff_t len;
  } capture[kMaxCaptures];

  Matcher(lua_State* l, const char* s, size_t ls, const char* p, size_t lp)
      : src_init(s), src_end(s + ls), p_end(p + lp), L(l), budget{l}, depth(kMaxDepth), level(0) {}

  void reset() {
    level = 0;
    depth = kMaxDepth;
  }

  int check_capture(int l) {
    l -= '1';
    if (l < 0 || l >= level || capture[l].len == kCapUnfinished)
      return luaL_error(L, "invalid capture index %%%d", l + 1);
    return l;
  }

  int capture_to_close() {
    int lv = level;
    for (lv--; lv >= 0; lv--)
      if (capture[lv].len == kCapUnfinished) return lv;
    return luaL_error(L, "invalid pattern capture");
  }

  // Patterns and subjects are Lua strings, so reading the byte at p_end/src_end is reading
  // their terminating '\0', as lstrlib.c does.
  const char* class_end(const char* p) {
    switch (*p++) {
      case kEsc:
        if (p == p_end) luaL_error(L, "malformed pattern (ends with '%%')");
        return p + 1;
      case '[':
        if (*p == '^') p++;
        do {  // look for a ']'
          if (p == p_end) luaL_error(L, "malformed pattern (missing ']')");
          if (*(p++) == kEsc && p < p_end) p++;  // skip escapes (e.g. '%]')
        } while (*p != ']');
        return p + 1;
      default:
        return p;
    }
  }

  static bool match_class(int c, int cl) {
    bool res;
    switch (std::tolower(cl)) {
      case 'a':
        res = std::isalpha(c);
        break;
      case 'c':
        res = std::iscntrl(c);
        break;
      case 'd':
        res = std::isdigit(c);
        break;
      case 'g':
        res = std::isgraph(c);
        break;
      case 'l':
        res = std::islower(c);
        break;
      case 'p':
        res = std::ispunct(c);
        break;
      case 's':
        res = std::isspace(c);
        break;
      case 'u':
        res = std::isupper(c);
        break;
      case 'w':
        res = std::isalnum(c);
        break;
      case 'x':
        res = std::isxdigit(c);
        break;
      case 'z':
        res = (c == 0);
        break;  // deprecated in Lua, still there
      default:
        return cl == c;
    }
    return std::islower(cl) ? res : !res;
  }

  // p points at '[', ec at the closing ']'.
  static bool match_bracket_class(int c, const char* p, const char* ec) {
    bool sig = true;
    if (*(p + 1) == '^') {
      sig = false;
      p++;
    }
    while (++p < ec) {
      if (*p == kEsc) {
        p++;
        if (match_class(c, uchar(*p))) return sig;
      } else if (*(p + 1) == '-' && p + 2 < ec) {
        p += 2;
        if (uchar(*(p - 2)) <= c && c <= uchar(*p)) return sig;
      } else if (uchar(*p) == c) {
        return sig;
      }
    }
    return !sig;
  }

  bool single_match(const char* s, const char* p, const char* ep) {
    if (s >= src_end) return false;
    int c = uchar(*s);
    switch (*p) {
      case '.':
        return true;
      case kEsc:
        return match_class(c, uchar(*(p + 1)));
      case '[':
        return match_bracket_class(c, p, ep - 1);
      default:
        return uchar(*p) == c;
    }
  }

  const char* match_balance(const char* s, const char* p) {
    if (p >= p_end - 1) luaL_error(L, "malformed pattern (missing arguments to '%%b')");
    if (*s != *p) return nullptr;
    int b = *p, e = *(p + 1), cont = 1;
    while (++s < src_end) {
      budget.tick();
      if (*s == e) {
        if (--cont == 0) return s + 1;
      } else if (*s == b) {
        cont++;
      }
    }
    return nullptr;  // the subject ends out of balance
  }

  const char* max_expand(const char* s, const char* p, const char* ep) {
    ptrdiff_t i = 0;
    while (single_match(s + i, p, ep)) {
      budget.tick();
      i++;
    }
    // try the longest repetition first, then one fewer
    while (i >= 0) {
      const char* res = match(s + i, ep + 1);
      if (res) return res;
      i--;
    }
    return nullptr;
  }

  const char* min_expand(const char* s, const char* p, const char* ep) {
    for (;;) {
      const char* res = match(s, ep + 1);
      if (res) return res;
      if (!single_match(s, p, ep)) return nullptr;
      s++;  // one more repetition
    }
  }

  const char* start_capture(const char* s, const char* p, ptrdiff_t what) {
    if (level >= kMaxCaptures) luaL_error(L, "too many captures");
    capture[level].init = s;
    capture[level].len = what;
    level++;
    const char* res = match(s, p);
    if (!res) level--;  // undo the capture
    return res;
  }

  const char* end_capture(const char* s, const char* p) {
    int l = capture_to_close();
    capture[l].len = s - capture[l].init;
    const char* res = match(s, p);
    if (!res) capture[l].len = kCapUnfinished;
    return res;
  }

  const char* match_capture(const char* s, int l) {
    l = check_capture(l);
    // A position capture's length (-2) is huge as a size_t: it never matches, as in Lua.
    size_t len = static_cast<size_t>(capture[l].len);
    if (static_cast<size_t>(src_end - s) >= len && std::memcmp(capture[l].init, s, len) == 0)
      return s + len;
    return nullptr;
  }

  const char* match(const char* s, const char* p) {
    if (depth-- == 0) luaL_error(L, "pattern too complex");
    budget.tick();
  init:  // goto for tail calls, as in lstrlib.c: the depth counts real recursion only
    if (p != p_end) {
      switch (*p) {
        case '(':
          if (*(p + 1) == ')')
            s = start_capture(s, p + 2, kCapPosition);
          else
            s = start_capture(s, p + 1, kCapUnfinished);
          break;
        case ')':
          s = end_capture(s, p + 1);
          break;
        case '$':
          if (p + 1 != p_end) goto dflt;  // '$' is an anchor only at the end
          s = (s == src_end) ? s : nullptr;
          break;
        case kEsc:
          switch (*(p + 1)) {
            case 'b':
              s = match_balance(s, p + 2);
              if (s) {
                p += 4;
                goto init;
              }
              break;
            case 'f': {
              p += 2;
              if (*p != '[') luaL_error(L, "missing '[' after '%%f' in pattern");
              const char* ep = class_end(p);
              char previous = (s == src_init) ? '\0' : *(s - 1);
              if (!match_bracket_class(uchar(previous), p, ep - 1) &&
                  match_bracket_class(uchar(*s), p, ep - 1)) {
                p = ep;
                goto init;
              }
              s = nullptr;
              break;
            }
            case '0':
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case '7':
            case '8':
            case '9':
              s = match_capture(s, uchar(*(p + 1)));
              if (s) {
                p += 2;
                goto init;
              }
              break;
            default:
              goto dflt;
          }
          break;
        default:
        dflt : {
          const char* ep = class_end(p);  // points to the optional suffix
          budget.tick();
          if (!single_match(s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {  // accepts empty
              p = ep + 1;
              goto init;
            }
            s = nullptr;  // '+' or no suffix
          } else {
            switch (*ep) {
              case '?': {
                const char* res = match(s + 1, ep + 1);
                if (res) {
                  s = res;
                } else {
                  p = ep + 1;
                  goto init;
                }
                break;
              }
              case '+':
                s++;  // one repetition already matched
                s = max_expand(s, p, ep);
                break;
              case '*':
                s = max_expand(s, p, ep);
                break;
              case '-':
                s = min_expand(s, p, ep);
                break;
              default:
                s++;
                p = ep;
                goto init;
            }
          }
          break;
        }
      }
    }
    depth++;
    return s;
  }

  // Pushes capture i (or the whole match when there is none) and returns its length, or
  // kCapPosition after pushing a position capture's integer.
  ptrdiff_t get_capture(int i, const char* s, const char* e, const char** cap) {
    if (i >= level) {
      if (i != 0) luaL_error(L, "invalid capture index %%%d", i + 1);
      *cap = s;
      return e - s;
    }
    ptrdiff_t capl = capture[i].len;
    *cap = capture[i].init;
    if (capl == kCapUnfinished) luaL_error(L, "unfinished capture");
    if (capl == kCapPosition) lua_pushinteger(L, (capture[i].init - src_init) + 1);
    return capl;
  }

  void push_capture(int i, const char* s, const char* e) {
    const char* cap;
    ptrdiff_t l = get_capture(i, s, e, &cap);
    if (l == kCapPosition) return;
    lua_pushlstring(L, cap, l);
    if (l >= static_cast<ptrdiff_t>(Redactor::kMinDerived))
      if (Redactor* r = derive_redactor(L))
        derive_window(L, *r, subject, static_cast<size_t>(cap - src_init), static_cast<size_t>(l),
                      "a string capture");
  }

  int push_captures(const char* s, const char* e) {
    int n = (level == 0 && s) ? 1 : level;
    luaL_checkstack(L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(i, s, e);
    return n;
  }
};

size_t posrelat(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<size_t>(pos) + 1;
}

bool no_specials(const char* p, size_t l) {
  size_t upto = 0;
  do {
    if (std::strpbrk(p + upto, kSpecials)) return false;
    upto += std::strlen(p + upto) + 1;  // there may be more after a '\0'
  } while (upto <= l);
  return true;
}

// Linear in the subject whatever the needle (glibc's memmem is two-way), a window at a time
// so that a stop is noticed; Lua's own lmemfind is quadratic on "aaa…ab" in "aaa…a".
const char* find_plain(lua_State* L, const char* s, size_t ls, const char* p, size_t lp) {
  if (lp == 0) return s;
  if (lp > ls) return nullptr;
  const size_t window = std::max(kPlainWindow, lp);  // start positions per memmem call
  size_t pos = 0;
  while (pos + lp <= ls) {
    size_t len = std::min(ls - pos, window + lp - 1);
    if (const void* hit = memmem(s + pos, len, p, lp)) return static_cast<const char*>(hit);
    pos += len - lp + 1;
    Sandbox::from(L)->check_stop(L);
  }
  return nullptr;
}

int find_aux(lua_State* L, bool find) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {  // starts after the subject's end
    lua_pushnil(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    const char* s2 = find_plain(L, s + init, ls - init, p, lp);
    if (s2) {
      lua_pushinteger(L, (s2 - s) + 1);
      lua_pushinteger(L, (s2 - s) + lp);
      return 2;
    }
  } else {
    const char* s1 = s + init;
    bool anchor = (*p == '^');
    if (anchor) {
      p++;
      lp--;
    }
    Matcher ms(L, s, ls, p, lp);
    do {
      ms.reset();
      if (const char* res = ms.match(s1, p)) {
        if (find) {
          lua_pushinteger(L, (s1 - s) + 1);
          lua_pushinteger(L, res - s);
          return ms.push_captures(nullptr, nullptr) + 2;
        }
        return ms.push_captures(s1, res);
      }
    } while (s1++ < ms.src_end && !anchor);
  }
  lua_pushnil(L);
  return 1;
}

int str_find(lua_State* L) { return find_aux(L, true); }
int str_match(lua_State* L) { return find_aux(L, false); }

// The iterator's state lives in a userdata; the subject and the pattern are upvalues too, so
// that the pointers into them stay valid.
struct GMatchState {
  const char* src;
  const char* p;
  const char* lastmatch;
  Matcher ms;
};

int gmatch_aux(lua_State* L) {
  auto* gm = static_cast<GMatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
  gm->ms.L = L;  // the iterator may be called from another coroutine
  gm->ms.budget.L = L;
  for (const char* src = gm->src; src <= gm->ms.src_end; src++) {
    gm->ms.reset();
    const char* e = gm->ms.match(src, gm->p);
    if (e && e != gm->lastmatch) {
      gm->src = gm->lastmatch = e;
      return gm->ms.push_captures(src, e);
    }
  }
  return 0;
}

int str_gmatch(lua_State* L) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);  // keeps the strings alive as upvalues
  auto* gm = static_cast<GMatchState*>(lua_newuserdatauv(L, sizeof(GMatchState), 0));
  if (init > ls) init = ls + 1;  // avoids overflow in s + init
  new (gm) GMatchState{s + init, p, nullptr, Matcher(L, s, ls, p, lp)};
  gm->ms.subject = lua_upvalueindex(1);
  lua_pushcclosure(L, gmatch_aux, 3);
  return 1;
}

void add_s(Matcher& ms, luaL_Buffer* b, const char* s, const char* e) {
  lua_State* L = ms.L;
  size_t l;
  const char* news = lua_tolstring(L, 3, &l);
  const char* p;
  while ((p = static_cast<const char*>(std::memchr(news, kEsc, l))) != nullptr) {
    luaL_addlstring(b, news, p - news);
    p++;  // skip the '%'; at the end this reads the '\0' terminator, an error below
    if (*p == kEsc) {
      luaL_addchar(b, *p);
    } else if (*p == '0') {
      luaL_addlstring(b, s, e - s);
    } else if (std::isdigit(uchar(*p))) {
      const char* cap;
      ptrdiff_t resl = ms.get_capture(*p - '1', s, e, &cap);
      if (resl == kCapPosition)
        luaL_addvalue(b);  // the position was pushed
      else
        luaL_addlstring(b, cap, resl);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", kEsc);
    }
    l -= p + 1 - news;
    news = p + 1;
    ms.budget.tick();
  }
  luaL_addlstring(b, news, l);
}

bool add_value(Matcher& ms, luaL_Buffer* b, const char* s, const char* e, int tr) {
  lua_State* L = ms.L;
  switch (tr) {
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      int n = ms.push_captures(s, e);
      // Not a pcall: this runs inside the runbook's own protected call, and an error (or the
      // deadline, raised by the hook inside the function) must propagate as from Lua's gsub.
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      ms.push_capture(0, s, e);
      lua_gettable(L, 3);
      break;
    default:  // a number or a string
      add_s(ms, b, s, e);
      return true;
  }
  if (!lua_toboolean(L, -1)) {  // nil or false keeps the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, e - s);
    return false;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return true;
}

int str_gsub(lua_State* L) {
  size_t srcl, lp;
  const char* src = luaL_checklstring(L, 1, &srcl);
  const char* p = luaL_checklstring(L, 2, &lp);
  const char* lastmatch = nullptr;
  int tr = lua_type(L, 3);
  lua_Integer max_s = luaL_optinteger(L, 4, static_cast<lua_Integer>(srcl) + 1);
  bool anchor = (*p == '^');
  lua_Integer n = 0;
  bool changed = false;
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (anchor) {
    p++;
    lp--;
  }
  Matcher ms(L, src, srcl, p, lp);
  // A subject holding a secret: where each of its secret ranges went in the output (the
  // segments of the subject the loop below copies or replaces one at a time), so that a
  // rewritten copy (token:gsub(".", "%0 ")) is registered as a secret.
  Redactor* red = derive_redactor(L);
  std::vector<std::pair<size_t, size_t>> ranges, out_ranges;
  if (red) ranges = red->covered(std::string_view(src, srcl));
  size_t next = 0, open_at = 0;
  bool open = false;
  auto segment = [&](size_t s0, size_t s1, size_t o0, size_t o1) {
    (void)s0;
    while (next < ranges.size()) {
      if (!open) {
        if (s1 <= ranges[next].first) return;
        open_at = o0;
        open = true;
      }
      if (s1 < ranges[next].second) return;
      out_ranges.emplace_back(open_at, o1);
      open = false;
      ++next;
    }
  };
  while (n < max_s) {
    size_t s0 = static_cast<size_t>(src - ms.src_init), o0 = luaL_bufflen(&b);
    ms.reset();
    const char* e = ms.match(src, p);
    if (e && e != lastmatch) {
      n++;
      changed = add_value(ms, &b, src, e, tr) || changed;
      src = lastmatch = e;
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (!ranges.empty()) segment(s0, static_cast<size_t>(src - ms.src_init), o0, luaL_bufflen(&b));
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    size_t s0 = static_cast<size_t>(src - ms.src_init), o0 = luaL_bufflen(&b);
    luaL_addlstring(&b, src, ms.src_end - src);
    if (!ranges.empty()) segment(s0, srcl, o0, luaL_bufflen(&b));
    luaL_pushresult(&b);
    if (red) {
      size_t outl;
      const char* out = lua_tolstring(L, -1, &outl);
      const char* subject = lua_tostring(L, 1);
      for (size_t i = 0; i < out_ranges.size() && i < ranges.size(); ++i) {
        auto [o0r, o1r] = out_ranges[i];
        std::string_view piece(out + o0r, o1r - o0r);
        if (piece != std::string_view(subject + ranges[i].first, ranges[i].second - ranges[i].first))
          derive_register(L, *red, piece, "string.gsub");
      }
      // A replacement holding a secret and a '%': its text is not copied as it is.
      if (tr == LUA_TSTRING) {
        size_t rl;
        const char* rs = lua_tolstring(L, 3, &rl);
        if (std::memchr(rs, kEsc, rl) && red->contains(std::string_view(rs, rl)))
          derive_register(L, *red, std::string_view(out, outl), "string.gsub");
      }
    }
  }
  lua_pushinteger(L, n);
  return 2;
}

// string.rep(s, n [, sep]): Lua's loops n times even when s and sep are empty (2^63 times for
// math.maxinteger), and a result the memory ceiling cannot hold is better refused at once than
// built until the allocator says no.
int str_rep(lua_State* L) {
  size_t l, lsep;
  const char* s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char* sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (l + lsep < l || l + lsep > kMaxSize / static_cast<size_t>(n))
    return luaL_error(L, "resulting string too large");
  size_t count = static_cast<size_t>(n);
  size_t total = count * l + (count - 1) * lsep;
  Sandbox* sb = Sandbox::from(L);
  size_t limit = sb->memory_limit(), used = sb->memory_used();
  size_t left = limit > used ? limit - used : 0;
  // The buffer, then the string made from it: twice the result at the peak.
  if (total > left / 2)
    return luaL_error(L,
                      "string.rep: the result (%I bytes, built in twice that) does not fit in "
                      "the memory ceiling of %d MiB (%d MiB in use)",
                      static_cast<lua_Integer>(total), static_cast<int>(limit >> 20),
                      static_cast<int>(used >> 20));
  luaL_Buffer b;
  char* out = luaL_buffinitsize(L, &b, total);
  size_t unit = l + lsep, body = (count - 1) * unit;  // "s sep" n-1 times, then s
  if (body > 0) {
    std::memcpy(out, s, l);
    std::memcpy(out + l, sep, lsep);
    // Doubling copies: the filled part is always a whole number of units.
    for (size_t filled = unit; filled < body;) {
      size_t c = std::min(filled, body - filled);
      std::memcpy(out + filled, out, c);
      filled += c;
    }
  }
  std::memcpy(out + body, s, l);
  luaL_pushresultsize(&b, total);
  return 1;
}

const luaL_Reg kBounded[] = {{"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
                             {"gsub", str_gsub}, {"rep", str_rep},     {nullptr, nullptr}};

}  // namespace

void install_bounded_string(lua_State* L, int G) {
  lua_getfield(L, G, "string");
  luaL_setfuncs(L, kBounded, 0);
  lua_pop(L, 1);
}

}  // namespace rb
