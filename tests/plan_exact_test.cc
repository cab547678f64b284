// Plans execute exactly, or say exactly why not (issue 9 C): a plan names things by `run.id` and
// by the clock and still executes (the execution is the run id reserved for it when it was saved;
// while checking, `time.now` answers with the rehearsal's values); a change whose object was
// edited after planning is refused with exit 4 naming it; `exec --plan` alone finds its file; a
// plan executes once, also when two operators start it at once; a failed rehearsal saves nothing
// and reserves nothing; reserved rows are not runs.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/hash.h"
#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string sh(const std::string& cmd) {
  std::string full = "(" + cmd + ") 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Tags HEAD before the rollback by run.id (the docs' own example), writes a backup named by the
// clock (to the millisecond: two processes never read the same value) and rewrites the config.
const char* kRollback = R"(
runbook {
  name = "tagged-rollback",
  version = "1.0.0",
  params = {
    repo  = { type = "path", required = true },
    dir   = { type = "path", required = true },
    token = { type = "string", secret = true, required = true },
  },
}

step("Mark", function(p)
  git.tag{ repo = p.repo, name = "before-rollback-" .. run.id }
  local stamp = string.format("%.0f", time.now() * 1000)
  fs.write(p.dir .. "/backup-" .. stamp .. ".txt", "backup")
end)

step("Roll back", function(p)
  fs.write(p.dir .. "/config.ini", "v=1\n")
end)
)";

struct World {
  TempDir d;
  std::string repo = d / "repo";
  std::string dir = d / "app";
  std::string file = d / "rb.lua";
  std::string journal = d / "journal.db";
  World() {
    write_file(dir + "/config.ini", "v=2\n");
    write_file(file, kRollback);
    sh("git init -q -b main '" + repo + "' && git -C '" + repo +
       "' -c user.name=T -c user.email=t@example.com commit -q --allow-empty -m one");
  }
  std::vector<std::string> base(std::vector<std::string> more) const {
    std::vector<std::string> a = {"exec"};
    a.insert(a.end(), more.begin(), more.end());
    a.insert(a.end(), {"--journal", journal});
    return a;
  }
  CliResult save(const std::string& plan, std::vector<std::string> more = {}) const {
    auto a = base({file, "--dry-run", "--save-plan", plan, "-p", "repo=" + repo, "-p", "dir=" + dir,
                   "-p", "token=t0k3n"});
    a.insert(a.end(), more.begin(), more.end());
    return run_cli(a);
  }
  // exec --plan PLAN, without the runbook file: the plan names it.
  CliResult execute(const std::string& plan, std::vector<std::string> more = {}) const {
    auto a = base({"--plan", plan, "-p", "token=t0k3n"});
    a.insert(a.end(), more.begin(), more.end());
    return run_cli(a);
  }
  std::string tags() const { return sh("git -C '" + repo + "' tag -l"); }
  std::vector<std::string> backups() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().filename().string().rfind("backup-", 0) == 0) out.push_back(e.path().filename());
    return out;
  }
  // Every row of the runs table, reserved ones included (Journal::run finds them).
  std::vector<RunRecord> all_rows() const {
    Journal j(journal);
    std::vector<RunRecord> out;
    for (int64_t id = 1; id <= 64; ++id)
      if (auto r = j.run(id)) out.push_back(*r);
    return out;
  }
  int reserved_rows() const {
    int n = 0;
    for (const auto& r : all_rows()) n += r.outcome == "reserved";
    return n;
  }
};

json read_plan(const std::string& path) { return json::parse(read_file(path)); }

}  // namespace

TEST(PlanExact, ATagNamedByRunIdAndAFileNamedByTheClockExecute) {
  World w;
  auto saved = w.save(w.d / "plan.json");
  ASSERT_EQ(saved.code, 0) << saved.out << saved.err;
  json plan = read_plan(w.d / "plan.json");
  int64_t reserved = plan["run_id"];
  ASSERT_GT(reserved, 0);
  std::string planned_tag = "before-rollback-" + std::to_string(reserved);
  EXPECT_EQ(plan["effects"][0]["name"], "git.tag");
  EXPECT_EQ(plan["effects"][0]["args"]["name"], planned_tag);
  ASSERT_EQ(plan["clock"].size(), 1u);
  EXPECT_EQ(w.tags(), "");  // the rehearsal changed nothing
  EXPECT_TRUE(w.backups().empty());
  // The hint: how to execute it, with the secret it needs.
  EXPECT_TRUE(has(saved.out, "runbook exec --plan " + w.d / "plan.json" + " -p token=...")) << saved.out;
  EXPECT_TRUE(has(saved.out, "run #" + std::to_string(reserved))) << saved.out;
  EXPECT_TRUE(plan["checked_live_only"].is_array());

  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the clock has moved on
  auto run = w.execute(w.d / "plan.json");
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_EQ(w.tags(), planned_tag);  // exactly the tag the plan showed
  EXPECT_EQ(w.backups().size(), 1u);
  EXPECT_EQ(read_file(w.dir + "/config.ini"), "v=1\n");
  Journal j(w.journal);
  auto live = j.run(reserved);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->mode, "live");
  EXPECT_EQ(live->outcome, "succeeded");
  EXPECT_EQ(live->plan_id, plan["id"]);
  EXPECT_EQ(live->runbook, "tagged-rollback");
  EXPECT_EQ(*j.last_run_id(), reserved);  // `show last` is the execution, not the dry-run
  EXPECT_FALSE(has(run.err, "run id differs")) << run.err;
}

TEST(PlanExact, AFileEditedAfterPlanningIsRefusedNamingTheWrite) {
  World w;
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  json plan = read_plan(w.d / "plan.json");
  std::string old_sha = sha256_hex("v=2\n");
  write_file(w.dir + "/config.ini", "v=2\nhand-edited=1\n");
  auto r = w.execute(w.d / "plan.json");
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "fs.write (write " + w.dir + "/config.ini")) << r.err;
  EXPECT_TRUE(has(r.err, "planned: {\"sha256\":\"" + old_sha)) << r.err;
  EXPECT_TRUE(has(r.err, sha256_hex("v=2\nhand-edited=1\n"))) << r.err;
  EXPECT_EQ(w.tags(), "");
  EXPECT_TRUE(w.backups().empty());
  EXPECT_EQ(read_file(w.dir + "/config.ini"), "v=2\nhand-edited=1\n");

  // --json: the refusal event carries the effect, planned and now.
  r = w.execute(w.d / "plan.json", {"--json"});
  EXPECT_EQ(r.code, 4);
  json refused;
  for (const auto& e : r.events())
    if (e.value("type", "") == "refused") refused = e;
  ASSERT_TRUE(refused.is_object()) << r.out;
  EXPECT_EQ(refused["reason"], "plan_drift");
  EXPECT_EQ(refused["exit_code"], 4);
  ASSERT_EQ(refused["drift"].size(), 1u) << refused.dump();
  EXPECT_EQ(refused["drift"][0]["effect"]["name"], "fs.write");
  EXPECT_EQ(refused["drift"][0]["effect"]["seq"], 4);  // git.tag, time.now, fs.write, fs.write
  EXPECT_EQ(refused["drift"][0]["planned"]["sha256"], old_sha);

  // Removed since: refused too. Then back as planned: it executes, as the reserved run.
  std::filesystem::remove(w.dir + "/config.ini");
  r = w.execute(w.d / "plan.json");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_TRUE(has(r.err, "\"absent\"")) << r.err;
  write_file(w.dir + "/config.ini", "v=2\n");
  r = w.execute(w.d / "plan.json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(w.dir + "/config.ini"), "v=1\n");
  EXPECT_EQ(w.tags(), "before-rollback-" + std::to_string(plan["run_id"].get<int64_t>()));
}

TEST(PlanExact, AFileCreatedWherePlanningFoundNoneIsRefused) {
  World w;
  std::filesystem::remove(w.dir + "/config.ini");
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  write_file(w.dir + "/config.ini", "someone=else\n");
  auto r = w.execute(w.d / "plan.json");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_TRUE(has(r.err, "planned: {\"sha256\":\"absent\"}")) << r.err;
  EXPECT_EQ(read_file(w.dir + "/config.ini"), "someone=else\n");
}

TEST(PlanExact, ASecondExecutionIsRefusedWithExit4) {
  World w;
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  ASSERT_EQ(w.execute(w.d / "plan.json").code, 0);
  std::string config = read_file(w.dir + "/config.ini");
  auto again = w.execute(w.d / "plan.json", {"--json"});
  EXPECT_EQ(again.code, 4) << again.out << again.err;
  json refused;
  for (const auto& e : again.events())
    if (e.value("type", "") == "refused") refused = e;
  ASSERT_TRUE(refused.is_object()) << again.out;
  EXPECT_EQ(refused["reason"], "plan_executed");
  EXPECT_EQ(refused["executed_by"], read_plan(w.d / "plan.json")["run_id"]);
  EXPECT_EQ(w.backups().size(), 1u);
  EXPECT_EQ(read_file(w.dir + "/config.ini"), config);
}

TEST(PlanExact, TwoOperatorsAtOnceExactlyOneRuns) {
  for (int round = 0; round < 2; ++round) {
    World w;
    ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
    CliResult a, b;
    std::thread ta([&] { a = w.execute(w.d / "plan.json"); });
    std::thread tb([&] { b = w.execute(w.d / "plan.json"); });
    ta.join();
    tb.join();
    EXPECT_EQ((a.code == 0) + (b.code == 0), 1) << a.err << "\n---\n" << b.err;
    EXPECT_EQ((a.code == 4) + (b.code == 4), 1) << a.err << "\n---\n" << b.err;
    EXPECT_EQ(w.backups().size(), 1u);
    int live = 0;
    for (const auto& r : w.all_rows()) live += r.mode == "live" && r.outcome != "reserved";
    EXPECT_EQ(live, 1);
    EXPECT_EQ(w.reserved_rows(), 0);
  }
}

TEST(PlanExact, AFailedDryRunSavesNoPlanAndReservesNothing) {
  World w;
  // The rehearsal fails at its last step (the runbook's own check).
  write_file(w.file, std::string(kRollback) +
                         "step('Check', function(p) assert(fs.exists(p.dir .. '/ready'), 'not ready') end)\n");
  auto r = w.save(w.d / "plan.json");
  EXPECT_NE(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "no plan saved")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(w.d / "plan.json"));
  EXPECT_EQ(w.reserved_rows(), 0);

  // A usage error (a required parameter missing): exit 2, no plan, nothing reserved.
  auto u = run_cli(w.base({w.file, "--dry-run", "--save-plan", w.d / "plan.json", "-p", "repo=" + w.repo}));
  EXPECT_EQ(u.code, 2) << u.err;
  EXPECT_TRUE(has(u.err, "no plan saved")) << u.err;
  EXPECT_FALSE(std::filesystem::exists(w.d / "plan.json"));
  EXPECT_EQ(w.reserved_rows(), 0);
  EXPECT_GE(w.all_rows().size(), 2u);  // the two dry-runs are journaled as runs
}

TEST(PlanExact, ReservedRowsAreNotRuns) {
  World w;
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  int64_t reserved = read_plan(w.d / "plan.json")["run_id"];
  EXPECT_EQ(w.reserved_rows(), 1);
  auto runs = run_cli({"runs", "--json", "--journal", w.journal});
  ASSERT_EQ(runs.code, 0);
  auto listed = runs.events();
  ASSERT_EQ(listed.size(), 1u) << runs.out;  // the dry-run only
  EXPECT_EQ(listed[0]["mode"], "dry-run");
  EXPECT_NE(listed[0]["id"], reserved);
  auto text = run_cli({"runs", "--journal", w.journal});
  EXPECT_FALSE(has(text.out, "reserved")) << text.out;
  auto stats = run_cli({"stats", "--json", "--journal", w.journal});
  EXPECT_EQ(stats.code, 0) << stats.err;
  EXPECT_FALSE(has(stats.out, "reserved")) << stats.out;
  auto show = run_cli({"show", std::to_string(reserved), "--journal", w.journal});
  EXPECT_EQ(show.code, 0);
  EXPECT_TRUE(has(show.out, "reserved for plan")) << show.out;
  auto report = run_cli({"report", std::to_string(reserved), "--journal", w.journal});
  EXPECT_EQ(report.code, 2);
  EXPECT_TRUE(has(report.err, "not a run yet")) << report.err;
  auto last = run_cli({"show", "last", "--json", "--journal", w.journal});
  EXPECT_EQ(json::parse(last.out)["mode"], "dry-run");
}

TEST(PlanExact, TheGivenFileMustBeThePlans) {
  World w;
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  write_file(w.d / "other.lua", std::string(kRollback) + "-- another runbook\n");
  auto r = run_cli(w.base({w.d / "other.lua", "--plan", w.d / "plan.json", "-p", "token=t0k3n"}));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(has(r.err, "is not the runbook of the plan")) << r.err;
  EXPECT_EQ(w.tags(), "");
  // The plan's own file, named: executes.
  r = run_cli(w.base({w.file, "--plan", w.d / "plan.json", "-p", "token=t0k3n"}));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(PlanExact, InAnotherJournalItExecutesAsANewRunAndSaysSo) {
  World w;
  ASSERT_EQ(w.save(w.d / "plan.json").code, 0);
  std::string other = w.d / "other.db";
  auto r = run_cli({"exec", "--plan", w.d / "plan.json", "-p", "token=t0k3n", "--journal", other});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "run id differs")) << r.err;
  Journal j(other);
  EXPECT_EQ(j.run(*j.last_run_id())->plan_id, read_plan(w.d / "plan.json")["id"]);
}
