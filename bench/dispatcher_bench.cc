// The engine's cost per effect: validation, journal write, redaction, reporter — with a trivial
// apply(), so what is measured is the engine. Probes are batched in the journal (no fsync);
// a change is made durable before it acts (one fsync each).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "dispatch/dispatcher.h"
#include "dispatch/registry.h"
#include "lua/runbook.h"

using namespace rb;

namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<Dispatcher> disp;
  Effect probe, change;
  Fixture() {
    char tmpl[] = "/tmp/runbook-bench-XXXXXX";
    dir = ::mkdtemp(tmpl);
    journal = std::make_unique<Journal>(dir + "/journal.db");
    RunOptions o;
    o.artifacts_root = dir + "/artifacts";
    disp = std::make_unique<Dispatcher>(journal.get(), nullptr, o);
    RunRecord run;
    run.runbook = "bench";
    run.version = "1.0.0";
    run.mode = "live";
    run.outcome = "running";
    run.started_ms = 1;
    journal->begin_run(run);
    disp->set_run_id(run.id);
    disp->redactor().add("a-secret-value");
    probe.name = "bench.probe";
    probe.kind = Kind::Probe;
    probe.args = {ArgSpec{"path", ArgType::Path, true, nullptr, false, ""},
                  ArgSpec{"timeout", ArgType::Duration, false, "30s", false, ""}};
    probe.describe = [](const Args& a) { return "probe " + a.str("path"); };
    probe.apply = [](EffectContext&, const Args&) { return json(true); };
    change = probe;
    change.name = "bench.change";
    change.kind = Kind::Change;
    change.apply = [](EffectContext&, const Args&) { return json{{"path", "/x"}, {"changed", true}}; };
  }
  ~Fixture() {
    disp.reset();
    journal.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

void BM_ProbeThroughDispatcher(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    auto r = f.disp->call(f.probe, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
  state.counters["fsyncs"] = static_cast<double>(f.journal->durable_commits() - 1);
}
BENCHMARK(BM_ProbeThroughDispatcher);

void BM_ChangeThroughDispatcher(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    auto r = f.disp->call(f.change, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
  state.counters["fsyncs_per_change"] =
      static_cast<double>(f.journal->durable_commits() - 1) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ChangeThroughDispatcher)->Iterations(300);

void BM_ChangeInDryRun(benchmark::State& state) {
  Fixture f;
  RunOptions o;
  o.mode = Mode::DryRun;
  Dispatcher dry(f.journal.get(), nullptr, o);
  dry.set_run_id(1);
  for (auto _ : state) {
    auto r = dry.call(f.change, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ChangeInDryRun);

// The prediction overlay in a dry-run: a probe whose module has predictions, none for this object
// (it is performed: the cost of asking), one answered from the overlay, and a change that
// records a prediction. Compare with BM_ChangeInDryRun and BM_ProbeThroughDispatcher.
Effect predicting(const Effect& base, bool is_change) {
  Effect e = base;
  if (is_change) {
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      ctx.predictions()["bench"][a.str("path")] = true;
    };
  } else {
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      const json& p = ctx.predictions();
      auto m = p.find("bench");
      if (m == p.end()) return nullptr;
      auto it = m->find(a.str("path"));
      return it == m->end() ? json(nullptr) : *it;
    };
  }
  return e;
}

void BM_ProbeInDryRunNotPredicted(benchmark::State& state) {
  Fixture f;
  RunOptions o;
  o.mode = Mode::DryRun;
  Dispatcher dry(f.journal.get(), nullptr, o);
  dry.set_run_id(1);
  Effect probe = predicting(f.probe, false);
  for (int i = 0; i < 1000; ++i) dry.predictions()["bench"]["/other/" + std::to_string(i)] = true;
  for (auto _ : state) {
    auto r = dry.call(probe, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ProbeInDryRunNotPredicted);

void BM_ProbeInDryRunPredicted(benchmark::State& state) {
  Fixture f;
  RunOptions o;
  o.mode = Mode::DryRun;
  Dispatcher dry(f.journal.get(), nullptr, o);
  dry.set_run_id(1);
  Effect probe = predicting(f.probe, false);
  dry.predictions()["bench"]["/srv/app/config"] = true;
  for (auto _ : state) {
    auto r = dry.call(probe, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ProbeInDryRunPredicted);

void BM_ChangeInDryRunPredicting(benchmark::State& state) {
  Fixture f;
  RunOptions o;
  o.mode = Mode::DryRun;
  Dispatcher dry(f.journal.get(), nullptr, o);
  dry.set_run_id(1);
  Effect change = predicting(f.change, true);
  for (auto _ : state) {
    auto r = dry.call(change, json{{"path", "/srv/app/config"}}, "bench.lua:1:");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ChangeInDryRunPredicting);

// The whole path from Lua: a runbook whose one step calls a cheap real probe N times.
void BM_ProbeFromLua(benchmark::State& state) {
  char tmpl[] = "/tmp/runbook-bench-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  const int n = 2000;
  {
    FILE* f = std::fopen((dir + "/rb.lua").c_str(), "w");
    std::fprintf(f, "runbook { name = 'b', version = '1.0.0' }\nstep('s', function()\n"
                    "  for i = 1, %d do env.get('HOME') end\nend)\n", n);
    std::fclose(f);
  }
  Journal j(dir + "/journal.db");
  for (auto _ : state) {
    ExecRequest req;
    req.file = dir + "/rb.lua";
    auto res = execute(req, &j, nullptr, builtin_registry());
    if (res.exit_code != 0) state.SkipWithError(res.error.c_str());
  }
  state.SetItemsProcessed(state.iterations() * n);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
BENCHMARK(BM_ProbeFromLua)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
