// libFuzzer: Lua <-> JSON. The input is parsed as JSON and pushed into a sandbox (push_json), read
// back (lua_to_json), and must come back the same after one round trip; then it goes through the
// runbook's own json.decode / json.encode in the sandbox under a deadline, where encoding what
// was decoded must be stable. Errors (too deep, not JSON) are fine; crashes, sanitizer reports,
// hangs and unstable round trips are findings.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <lua.hpp>

#include "core/error.h"
#include "core/json.h"
#include "lua/convert.h"
#include "lua/modules.h"
#include "lua/sandbox.h"

namespace {

const char* kRoundTrip = R"(
local text = ...
local ok, v = pcall(json.decode, text)
if not ok then return "decode-error" end
local ok2, once = pcall(json.encode, v)
if not ok2 then return "encode-error" end
local twice = json.encode(json.decode(once))
if twice ~= once then error("json round trip is not stable:\n" .. once .. "\n" .. twice) end
return "ok"
)";

void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_json: %s\n", what.c_str());
  std::abort();
}

// push_json then lua_to_json, protected: a Lua error (too deep, out of memory) is an answer.
int to_lua_and_back(lua_State* L) {
  auto* in = static_cast<const rb::json*>(lua_touserdata(L, 1));
  auto* out = static_cast<rb::json*>(lua_touserdata(L, 2));
  rb::push_json(L, *in);
  try {
    *out = rb::lua_to_json(L, -1, "fuzz input");
  } catch (const rb::ArgError& e) {
    return luaL_error(L, "%s", e.what());
  }
  return 0;
}

bool trip(lua_State* L, const rb::json& in, rb::json* out) {
  lua_pushcfunction(L, to_lua_and_back);
  lua_pushlightuserdata(L, const_cast<rb::json*>(&in));
  lua_pushlightuserdata(L, out);
  bool ok = lua_pcall(L, 2, 0, 0) == LUA_OK;
  if (!ok) lua_pop(L, 1);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  rb::Sandbox sandbox(rb::SandboxOptions{64u << 20, {}});
  lua_State* L = sandbox.L();
  rb::install_pure_modules(L);

  rb::json parsed = rb::json::parse(text, text + size, nullptr, false);
  if (!parsed.is_discarded()) {
    rb::json once, twice;
    // Empty objects and lists are one Lua value ({}), so compare after the first trip. A Lua
    // table has no key order (lua_next follows the hash part), so compare as unordered values.
    if (trip(L, parsed, &once) && trip(L, once, &twice) &&
        nlohmann::json(once) != nlohmann::json(twice))
      finding("push_json/lua_to_json round trip is not stable:\n" + once.dump() + "\n" + twice.dump());
  }

  std::string err;
  if (!sandbox.load_source(kRoundTrip, "=fuzz_json", &err)) finding("harness: " + err);
  lua_pushlstring(L, text, size);
  sandbox.arm(std::chrono::steady_clock::now() + std::chrono::seconds(2), "fuzz_json deadline");
  int rc = lua_pcall(L, 1, 1, 0);
  sandbox.disarm();
  if (rc != LUA_OK) {
    std::string m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(non-string error)";
    if (m.find("not stable") != std::string::npos) finding(m);
  }
  lua_settop(L, 0);
  return 0;
}
