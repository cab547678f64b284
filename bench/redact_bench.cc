// Redaction and derived secrets (issue 10): Redactor::text on a 4 KiB line with 1 to 1,000
// secrets (the per-secret loop up to Redactor::kNaiveUpTo, one indexed pass beyond), against the
// old per-secret loop; and the cost the derivation check adds to Lua's string functions, with no
// secret, one, and 1,000 registered.
#include <benchmark/benchmark.h>

#include <string>

#include "dispatch/dispatcher.h"
#include "dispatch/redact.h"
#include "lua/sandbox.h"

using namespace rb;

namespace {

std::string secret(int i) { return "s3cr3t-" + std::to_string(i * 7919) + "-tok"; }

std::string line_with(const std::string& s) {
  std::string t;
  while (t.size() < 4096) t += "GET /api/v1/items?page=12&limit=50 200 OK 12ms ";
  t.insert(2048, s);
  return t;
}

// The loop Redactor::text used before: every secret searched for and replaced in turn.
std::string naive(std::string s, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    size_t pos = 0;
    while ((pos = s.find(secret, pos)) != std::string::npos) {
      s.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return s;
}

void BM_RedactText(benchmark::State& state) {
  Redactor r;
  for (int i = 0; i < state.range(0); ++i) r.add(secret(i));
  std::string text = line_with(secret(0));
  for (auto _ : state) benchmark::DoNotOptimize(r.text(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_RedactText)->Arg(1)->Arg(8)->Arg(9)->Arg(64)->Arg(1000);

void BM_RedactTextPerSecretLoop(benchmark::State& state) {
  std::vector<std::string> secrets;
  for (int i = 0; i < state.range(0); ++i) secrets.push_back(secret(i));
  std::string text = line_with(secret(0));
  for (auto _ : state) benchmark::DoNotOptimize(naive(text, secrets));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_RedactTextPerSecretLoop)->Arg(1)->Arg(8)->Arg(9)->Arg(64)->Arg(1000);

// 1,000 calls of a string function per iteration, in the sandbox, with range(0) secrets
// registered; the subject holds the first secret when there is one (so each call registers, or
// finds registered, its derived value).
void lua_loop(benchmark::State& state, const char* body, size_t subject_size) {
  Sandbox sb(SandboxOptions{});
  Dispatcher disp(nullptr, nullptr, RunOptions{});
  sb.dispatcher = &disp;
  for (int i = 0; i < state.range(0); ++i) disp.redactor().add(secret(i));
  std::string subject(subject_size, 'x');
  if (state.range(0) > 0) subject.replace(subject_size / 2, secret(0).size(), secret(0));
  std::string code = std::string("local s = ...\nfor i = 1, 1000 do local x = ") + body + " end";
  std::string err;
  if (!sb.load_source(code, "=bench", &err)) {
    state.SkipWithError(err.c_str());
    return;
  }
  lua_State* L = sb.L();
  lua_setglobal(L, "bench_fn");
  for (auto _ : state) {
    lua_getglobal(L, "bench_fn");
    lua_pushlstring(L, subject.data(), subject.size());
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      state.SkipWithError(lua_tostring(L, -1));
      return;
    }
  }
  state.counters["derived"] = static_cast<double>(disp.redactor().derived());
  state.SetItemsProcessed(state.iterations() * 1000);
}

void BM_LuaUpper64(benchmark::State& state) { lua_loop(state, "s:upper()", 64); }
void BM_LuaSub64(benchmark::State& state) { lua_loop(state, "s:sub(20, 50)", 64); }
void BM_LuaFormatQ64(benchmark::State& state) { lua_loop(state, "string.format('%q', s)", 64); }
void BM_LuaGsub4K(benchmark::State& state) { lua_loop(state, "s:gsub('x', 'y')", 4096); }
void BM_LuaSubOf64K(benchmark::State& state) { lua_loop(state, "s:sub(i, i + 9)", 65536); }
BENCHMARK(BM_LuaUpper64)->Arg(0)->Arg(1)->Arg(1000);
BENCHMARK(BM_LuaSub64)->Arg(0)->Arg(1)->Arg(1000);
BENCHMARK(BM_LuaFormatQ64)->Arg(0)->Arg(1)->Arg(1000);
BENCHMARK(BM_LuaGsub4K)->Arg(0)->Arg(1)->Arg(1000);
BENCHMARK(BM_LuaSubOf64K)->Arg(0)->Arg(1)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
