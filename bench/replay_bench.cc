// Replaying a run of 10,000 effects: reading them from the journal, loading the runbook, and
// answering every call from the journal (nothing performed, nothing journaled). The run is made
// once, live, by a runbook that reads the environment, the clock and the file system in a loop
// and writes a file every 100th time (100 changes, so 100 fsyncs when it is recorded).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dispatch/registry.h"
#include "lua/runbook.h"

using namespace rb;

namespace {

const char* kTenThousand = R"(
runbook{ name = "ten-thousand", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("loop", function(p)
  local n = 0
  for i = 1, 2500 do
    if env.get("HOME") then n = n + 1 end
    time.now()
    fs.exists(p.root .. "/f" .. (i % 7))
    if i % 25 == 0 then
      fs.write(p.root .. "/f" .. (i % 7), "round " .. i)
    else
      fs.stat(p.root)
    end
  end
end)
)";

struct Recorded {
  std::string dir;
  std::unique_ptr<Journal> journal;
  int64_t run_id = 0;
  RunRecord run;
  Recorded() {
    char tmpl[] = "/tmp/runbook-replay-bench-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::filesystem::create_directories(dir + "/root");
    std::ofstream(dir + "/rb.lua") << kTenThousand;
    journal = std::make_unique<Journal>(dir + "/journal.db");
    ExecRequest req;
    req.file = dir + "/rb.lua";
    req.params = {{"root", dir + "/root"}};
    ExecResult res = execute(req, journal.get(), nullptr, builtin_registry());
    if (res.exit_code != 0 || res.effects != 10000)
      throw std::runtime_error("the recorded run failed: " + res.error);
    run_id = res.run_id;
    run = *journal->run(run_id);
  }
  ~Recorded() {
    journal.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Recorded& recorded() {
  static Recorded r;
  return r;
}

ExecRequest replay_request(const Recorded& r, std::vector<EffectRecord> effects,
                           std::vector<StepRecord> steps) {
  ExecRequest req;
  req.file = r.run.file;
  req.typed_params = r.run.params;
  req.options.mode = Mode::Replay;
  req.options.seen_id = r.run.id;
  req.options.seen_mode = r.run.mode;
  req.seed = r.run.seed;
  req.recorded = std::move(effects);
  req.recorded_steps = std::move(steps);
  req.recorded_outcome = r.run.outcome;
  req.expect_sha256 = r.run.sha256;
  return req;
}

// What `runbook replay` does, minus printing: read the journal, load, answer 10,000 effects.
void BM_Replay10kEffects(benchmark::State& state) {
  Recorded& r = recorded();
  for (auto _ : state) {
    auto req = replay_request(r, r.journal->effects(r.run_id), r.journal->steps(r.run_id));
    ExecResult res = execute(req, nullptr, nullptr, builtin_registry());
    if (res.answered != 10000 || !res.divergence.is_null()) state.SkipWithError("replay diverged");
  }
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_Replay10kEffects)->Unit(benchmark::kMillisecond);

// The part of it that is reading 10,000 effect rows back from SQLite.
void BM_ReadJournal10kEffects(benchmark::State& state) {
  Recorded& r = recorded();
  for (auto _ : state) benchmark::DoNotOptimize(r.journal->effects(r.run_id));
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_ReadJournal10kEffects)->Unit(benchmark::kMillisecond);

// The part that is answering: the Lua loop and the dispatcher, effects already in memory.
void BM_AnswerFromMemory10kEffects(benchmark::State& state) {
  Recorded& r = recorded();
  auto effects = r.journal->effects(r.run_id);
  auto steps = r.journal->steps(r.run_id);
  for (auto _ : state) {
    auto req = replay_request(r, effects, steps);
    ExecResult res = execute(req, nullptr, nullptr, builtin_registry());
    if (res.answered != 10000) state.SkipWithError("replay diverged");
  }
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_AnswerFromMemory10kEffects)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
