// Plan files: `exec --dry-run --save-plan` records what the plan depended on; `exec --plan`
// executes only if that still holds, refuses and shows the drift otherwise, and runs a plan at
// most once.
#include <gtest/gtest.h>

#include <thread>

#include "core/strings.h"
#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

// Roll the config back to the version the plan saw, if the service is as unhealthy as it was.
const char* kRollback = R"(
runbook {
  name = "config-rollback",
  version = "1.2.0",
  params = {
    root  = { type = "path", required = true },
    url   = { type = "url", required = true },
    token = { type = "string", secret = true, required = true },
  },
}

step("Look", function(p)
  local health = http.get{ url = p.url .. "/health", expect = { 200, 503 } }
  local current = fs.read(p.root .. "/config.ini")
  local stamp = time.now()  -- differs every time; not a dependency of the plan
  fs.write(p.root .. "/config.ini", "restored over: " .. current)
  http.post{ url = p.url .. "/notify", json = { health = health.status },
             headers = { Authorization = "Bearer " .. p.token } }
  local log = fs.exists(p.root .. "/applied.log") and fs.read(p.root .. "/applied.log") or ""
  fs.write(p.root .. "/applied.log", log .. "applied\n")
end)
)";

struct World {
  TempDir dir;
  HttpServer server{dir / "srv"};
  std::string root = dir / "app";
  World() {
    write_file(root + "/config.ini", "v=2\n");
    write_file(dir / "rb.lua", kRollback);
  }
  std::map<std::string, std::string> env() const { return {{"RUNBOOK_JOURNAL", dir / "journal.db"}}; }
  CliResult save(const std::string& plan) const {
    return run_cli({"exec", dir / "rb.lua", "--dry-run", "--save-plan", plan, "-p", "root=" + root,
                    "-p", "url=" + server.url(""), "-p", "token=pl4n-s3cret"}, env());
  }
  CliResult execute(const std::string& plan, std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"exec", dir / "rb.lua", "--plan", plan, "-p", "token=pl4n-s3cret"};
    a.insert(a.end(), more.begin(), more.end());
    return run_cli(a, env());
  }
  int live_runs() const {
    Journal j(dir / "journal.db");
    RunFilter f;
    f.limit = 0;
    int n = 0;
    for (const auto& r : j.runs(f)) n += r.mode == "live";
    return n;
  }
};

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST(Plan, ExecutesWhenItStillHoldsAndOnlyOnce) {
  World w;
  w.server.set_status(503);
  auto saved = w.save(w.dir / "plan.json");
  ASSERT_EQ(saved.code, 0) << saved.out << saved.err;
  EXPECT_TRUE(has(saved.out, "plan saved to")) << saved.out;
  std::string plan_text = read_file(w.dir / "plan.json");
  EXPECT_FALSE(has(plan_text, "pl4n-s3cret"));
  json plan = json::parse(plan_text);
  EXPECT_EQ(plan["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(plan["params"]["token"], "***");
  int fingerprints = 0;
  for (const auto& e : plan["effects"]) fingerprints += e.contains("fingerprint");
  EXPECT_EQ(fingerprints, 3);  // http.get, fs.read, fs.exists — not time.now
  EXPECT_EQ(w.server.changing_requests(), 0);
  EXPECT_EQ(read_file(w.root + "/config.ini"), "v=2\n");

  auto run = w.execute(w.dir / "plan.json");
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_EQ(read_file(w.root + "/config.ini"), "restored over: v=2\n");
  EXPECT_EQ(w.server.changing_requests(), 1);
  Journal j(w.dir / "journal.db");
  auto live = *j.run(*j.last_run_id());
  EXPECT_EQ(live.plan_id, plan["id"]);
  EXPECT_EQ(live.mode, "live");

  // Twice: refused, nothing done (even though the world now differs anyway).
  auto again = w.execute(w.dir / "plan.json");
  EXPECT_EQ(again.code, 4);
  EXPECT_TRUE(has(again.err, "was executed already, by run #" + std::to_string(live.id))) << again.err;
  EXPECT_EQ(w.server.changing_requests(), 1);
  EXPECT_EQ(read_file(w.root + "/applied.log"), "applied\n");
}

TEST(Plan, RefusesAndShowsWhatDrifted) {
  World w;
  w.server.set_status(503);
  ASSERT_EQ(w.save(w.dir / "plan.json").code, 0);
  std::string tree = sha256_tree(w.root);

  // The service recovered meanwhile: the plan's premise no longer holds.
  w.server.set_status(200);
  auto r = w.execute(w.dir / "plan.json");
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "no longer holds")) << r.err;
  EXPECT_TRUE(has(r.err, "probe #1 http.get")) << r.err;
  EXPECT_TRUE(has(r.err, "\"status\":503")) << r.err;
  EXPECT_TRUE(has(r.err, "\"status\":200")) << r.err;
  EXPECT_EQ(sha256_tree(w.root), tree);
  EXPECT_EQ(w.server.changing_requests(), 0);
  EXPECT_EQ(w.live_runs(), 0);

  // The config changed: the read, and the write that depends on it, drifted.
  w.server.set_status(503);
  write_file(w.root + "/config.ini", "v=3\n");
  r = w.execute(w.dir / "plan.json", {"--json"});
  EXPECT_EQ(r.code, 4);
  json d;
  for (const auto& e : r.events())
    if (e.value("type", "") == "refused" && e.value("reason", "") == "plan_drift") d = e["drift"];
  ASSERT_TRUE(d.is_array()) << r.out;
  ASSERT_GE(d.size(), 2u);
  EXPECT_TRUE(has(d[0]["what"], "probe #2 fs.read"));
  EXPECT_EQ(d[0]["planned"], "v=2\n");
  EXPECT_EQ(d[0]["now"], "v=3\n");
  EXPECT_EQ(d[0]["effect"]["name"], "fs.read");
  EXPECT_TRUE(has(d[1]["what"], "effect #4"));
  write_file(w.root + "/config.ini", "v=2\n");

  // Another parameter than planned.
  r = w.execute(w.dir / "plan.json", {"-p", "root=" + w.dir.path()});
  EXPECT_EQ(r.code, 4);
  EXPECT_TRUE(has(r.err, "parameter 'root'")) << r.err;

  // The runbook itself changed.
  write_file(w.dir / "rb.lua", std::string(kRollback) + "-- edited\n");
  r = w.execute(w.dir / "plan.json");
  EXPECT_EQ(r.code, 4);
  EXPECT_TRUE(has(r.err, "the runbook file")) << r.err;
  write_file(w.dir / "rb.lua", kRollback);

  // Back as planned: it executes.
  EXPECT_EQ(w.live_runs(), 0);
  EXPECT_EQ(w.execute(w.dir / "plan.json").code, 0);
  EXPECT_EQ(w.live_runs(), 1);
}

TEST(Plan, TwoOperatorsAtOnceExecuteItOnce) {
  World w;
  ASSERT_EQ(w.save(w.dir / "plan.json").code, 0);
  CliResult a, b;
  std::thread ta([&] { a = w.execute(w.dir / "plan.json"); });
  std::thread tb([&] { b = w.execute(w.dir / "plan.json"); });
  ta.join();
  tb.join();
  EXPECT_EQ((a.code == 0) + (b.code == 0), 1) << a.err << "\n---\n" << b.err;
  EXPECT_EQ((a.code == 4) + (b.code == 4), 1);
  EXPECT_EQ(read_file(w.root + "/applied.log"), "applied\n");
  EXPECT_EQ(w.server.changing_requests(), 1);
}

TEST(Plan, NoPlanFromAFailedDryRunAndFlagsThatDoNotGoTogether) {
  World w;
  std::remove((w.root + "/config.ini").c_str());  // fs.read fails
  auto r = w.save(w.dir / "plan.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "no plan saved"));
  EXPECT_FALSE(std::filesystem::exists(w.dir / "plan.json"));
  EXPECT_EQ(run_cli({"exec", w.dir / "rb.lua", "--save-plan", w.dir / "p.json"}, w.env()).code, 2);
  EXPECT_EQ(run_cli({"exec", w.dir / "rb.lua", "--dry-run", "--plan", w.dir / "p.json"}, w.env()).code, 2);
  write_file(w.dir / "junk.json", "{\"a\": 1}");
  auto junk = run_cli({"exec", w.dir / "rb.lua", "--plan", w.dir / "junk.json"}, w.env());
  EXPECT_EQ(junk.code, 2);
  EXPECT_TRUE(has(junk.err, "is not a runbook plan")) << junk.err;
}
