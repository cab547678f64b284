// The choke point: a change never applies in dry-run, probes do; the journal records every call
// write-ahead with secrets redacted; one fsync per change and none per probe.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

const char* kMixed = R"(
runbook { name = "mixed", version = "1.2.3",
  params = { root = { type = "path", required = true }, token = { type = "string", secret = true, default = "tok-SECRET-123" } } }
step("probe and change", function(p)
  assert(fs.exists(p.root .. "/present.txt") == true)
  local w = fs.write{ path = p.root .. "/new.txt", content = "hello " .. p.token }
  assert(w.path == p.root .. "/new.txt", w.path)
  local r = exec{ "sh", "-c", "echo ran > " .. p.root .. "/ran.txt" }
  assert(r.code == 0 and r.stdout == "")
  log.info("token is " .. p.token)
end)
)";

}  // namespace

TEST(Dispatcher, DryRunPerformsProbesButNoChange) {
  TempDir d;
  write_file(d / "present.txt", "x");
  auto r = run_lua(d.path(), kMixed, Mode::DryRun, {{"root", d.path()}});
  ASSERT_EQ(r.result.exit_code, 0) << r.result.error;
  EXPECT_FALSE(std::filesystem::exists(d / "new.txt"));
  EXPECT_FALSE(std::filesystem::exists(d / "ran.txt"));
  ASSERT_EQ(r.events.effects.size(), 3u);
  EXPECT_EQ(r.events.effects[0].status, "ok");       // fs.exists: a probe, really performed
  EXPECT_EQ(r.events.effects[0].result, true);
  EXPECT_EQ(r.events.effects[1].status, "planned");  // fs.write
  EXPECT_EQ(r.events.effects[1].preview["text"], "creates " + d / "new.txt");
  EXPECT_EQ(r.events.effects[2].status, "planned");  // exec
}

TEST(Dispatcher, OfflineDryRunDoesNotProbeEither) {
  TempDir d;  // present.txt does not exist: a real probe would fail the assert
  auto r = run_lua(d.path(), kMixed, Mode::DryRun, {{"root", d.path()}}, /*offline=*/true);
  ASSERT_EQ(r.result.exit_code, 0) << r.result.error;
  EXPECT_EQ(r.events.effects[0].status, "planned");
}

TEST(Dispatcher, LiveRunAppliesAndJournalsEveryEffectWithSecretsRedacted) {
  TempDir d;
  write_file(d / "present.txt", "x");
  auto r = run_lua(d.path(), kMixed, Mode::Live, {{"root", d.path()}});
  ASSERT_EQ(r.result.exit_code, 0) << r.result.error;
  EXPECT_EQ(read_file(d / "new.txt"), "hello tok-SECRET-123");  // the world got the real value
  EXPECT_EQ(read_file(d / "ran.txt"), "ran\n");
  EXPECT_TRUE(r.events.logged("token is ***"));
  Journal j(d / "journal.db");
  auto run = j.run(r.result.run_id);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->outcome, "succeeded");
  EXPECT_EQ(run->version, "1.2.3");
  EXPECT_EQ(run->sha256.size(), 64u);
  EXPECT_EQ(run->params["token"], "***");
  auto effects = j.effects(r.result.run_id);
  ASSERT_EQ(effects.size(), 3u);
  EXPECT_EQ(effects[0].name, "fs.exists");
  EXPECT_EQ(effects[0].kind, "probe");
  EXPECT_EQ(effects[1].kind, "change");
  EXPECT_EQ(effects[1].state, "done");
  EXPECT_EQ(effects[1].args["content"], "hello ***");
  EXPECT_NE(effects[1].site.find("rb.lua:"), std::string::npos);
  for (const auto& e : effects) EXPECT_EQ(e.args.dump().find("SECRET"), std::string::npos);
  for (const auto& l : j.logs(r.result.run_id)) EXPECT_EQ(l.message.find("SECRET"), std::string::npos);
  // Nowhere in the file either (WAL checkpointed or not).
  std::string raw = read_file(d / "journal.db") + read_file(d / "journal.db-wal");
  EXPECT_EQ(raw.find("tok-SECRET-123"), std::string::npos);
}

TEST(Dispatcher, OneFsyncPerChangeAndNonePerProbe) {
  TempDir d;
  write_file(d / "rb.lua", R"(
runbook { name = "count", version = "1.0.0" }
step("many probes, two changes", function()
  for i = 1, 50 do fs.exists("/") end
  fs.mkdir(")" + d / "a" + R"(")
  fs.mkdir(")" + d / "b" + R"(")
end)
)");
  Journal j(d / "journal.db");
  Captured c;
  ExecRequest req;
  req.file = d / "rb.lua";
  auto before = j.durable_commits();
  auto res = execute(req, &j, &c, builtin_registry());
  ASSERT_EQ(res.exit_code, 0) << res.error;
  // begin_run is durable too: 1 + 2 changes.
  EXPECT_EQ(j.durable_commits() - before, 3);
}

TEST(Dispatcher, FailedEffectIsJournaledWithItsErrorAndResult) {
  TempDir d;
  auto r = run_lua(d.path(), R"(
runbook { name = "f", version = "1.0.0" }
step("fails", function() exec{ "sh", "-c", "echo nope >&2; exit 2" } end)
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  Journal j(d / "journal.db");
  auto effects = j.effects(r.result.run_id);
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].state, "failed");
  EXPECT_EQ(effects[0].error, "exec: 'sh' exited 2: nope");
  EXPECT_EQ(effects[0].result["code"], 2);
  auto steps = j.steps(r.result.run_id);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].outcome, "failed");
  EXPECT_EQ(j.run(r.result.run_id)->outcome, "failed");
}

TEST(Dispatcher, StepRetriesThenSucceeds) {
  TempDir d;
  auto r = run_lua(d.path(), R"(
runbook { name = "retry", version = "1.0.0", params = { dir = { type = "path" } } }
step{ "flaky", retries = 2, retry_delay = "10ms", run = function(p)
  local n = tonumber(fs.exists(p.dir .. "/1") and (fs.exists(p.dir .. "/2") and 3 or 2) or 1)
  fs.write(p.dir .. "/" .. n, "x")
  assert(n >= 3, "attempt " .. n .. " fails")
end }
)", Mode::Live, {{"dir", d.path()}});
  EXPECT_EQ(r.result.exit_code, 0) << r.result.error;
  EXPECT_EQ(r.events.step_outcomes, (std::vector<std::string>{"1:failed", "1:failed", "1:succeeded"}));
}

TEST(Dispatcher, AlwaysStepsRunAfterAFailureOthersAreSkipped) {
  TempDir d;
  auto r = run_lua(d.path(), R"(
runbook { name = "always", version = "1.0.0" }
step("breaks", function() error("boom") end)
step("skipped", function() log.info("should not run") end)
step{ "cleanup", always = true, run = function() log.info("cleanup ran") end }
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_TRUE(r.events.logged("cleanup ran"));
  EXPECT_FALSE(r.events.logged("should not run"));
  EXPECT_EQ(r.events.step_outcomes, (std::vector<std::string>{"1:failed", "2:skipped", "3:succeeded"}));
  EXPECT_NE(r.result.error.find("rb.lua:3: boom"), std::string::npos) << r.result.error;
}

TEST(Dispatcher, DeadlineBoundsAnEffectThatWouldWaitLonger) {
  TempDir d;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_lua(d.path(), R"(
runbook { name = "deadline", version = "1.0.0" }
step{ "short", timeout = "500ms", run = function() exec{ "sleep", "30", timeout = "60s" } end }
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(r.result.error.find("exceeded its timeout of 500ms (in exec)"), std::string::npos) << r.result.error;
}
