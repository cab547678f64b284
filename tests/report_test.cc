// The journal read back for people: `report` (the incident record the source procedures fill in
// by hand), `stats` (rollback_metrics.py), and which version of a runbook ran (`runs`, `show`).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "core/hash.h"
#include "core/strings.h"
#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

const char* kFlagOff = R"(
runbook {
  name = "flag-off",
  version = "3.0.1",
  params = {
    root   = { type = "path", required = true },
    url    = { type = "url", required = true },
    reason = { type = "string", default = "checkout errors at 5%" },
    token  = { type = "string", secret = true, required = true },
  },
}

step("Back up the config", function(p)
  local b = fs.backup(p.root .. "/config.ini")
  log.info("backup at " .. b)
  fs.write(p.root .. "/config.ini", "checkout=off\n")
end)

step("Turn the flag off", function(p)
  http.post{ url = p.url .. "/api/feature-flags/toggle", json = { flag_name = "checkout", enabled = false },
             headers = { Authorization = "Bearer " .. p.token } }
  log.info("flag off using token " .. p.token)
end)

step{ "Verify", retries = 1, retry_delay = "100ms", run = function(p)
  if not fs.exists(p.root .. "/verified-once") then
    fs.write(p.root .. "/verified-once", "x")
    error("the error rate is still 5%")
  end
end }
)";

struct World {
  TempDir dir;
  HttpServer server{dir / "srv"};
  World() { write_file(dir / "app/config.ini", "checkout=on\n"); }
  std::map<std::string, std::string> env() const { return {{"RUNBOOK_JOURNAL", dir / "journal.db"}}; }
  std::vector<std::string> exec(const std::string& file, std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"exec", file, "-p", "root=" + dir / "app", "-p", "url=" + server.url(""),
                                  "-p", "token=tok-9f8e7d6c5b4a"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST(Report, MarkdownAndJsonHoldTheIncidentRecordAndNoSecret) {
  World w;
  write_file(w.dir / "rb.lua", kFlagOff);
  auto run = run_cli(w.exec(w.dir / "rb.lua"), w.env());
  ASSERT_EQ(run.code, 0) << run.out << run.err;

  auto md = run_cli({"report", "last"}, w.env());
  ASSERT_EQ(md.code, 0) << md.err;
  const std::string& m = md.out;
  EXPECT_FALSE(has(m, "tok-9f8e7d6c5b4a")) << m;
  EXPECT_TRUE(has(m, "# Incident record: flag-off 3.0.1 — succeeded"));
  // The rollback log entry of the sources, filled in.
  EXPECT_TRUE(has(m, "ROLLBACK INITIATED"));
  EXPECT_TRUE(has(m, "Trigger: checkout errors at 5%"));
  EXPECT_TRUE(has(m, "Verification: success"));
  EXPECT_TRUE(has(m, sha256_file(w.dir / "rb.lua")));
  EXPECT_TRUE(has(m, "| Mode | live |"));
  EXPECT_TRUE(has(m, std::filesystem::current_path().string()));
  EXPECT_TRUE(has(m, "- `token` = `***`"));
  EXPECT_TRUE(has(m, "| Total recovery time | "));
  // The timeline: steps, effects with durations, the failed first attempt and its retry.
  EXPECT_TRUE(has(m, "**Step 1 Back up the config** — succeeded"));
  EXPECT_TRUE(has(m, "**Step 3 Verify** — failed: "));
  EXPECT_TRUE(has(m, "**Step 3 Verify** (attempt 2) — succeeded"));
  EXPECT_TRUE(has(m, "✓ `http.post` POST " + w.server.url("/api/feature-flags/toggle")));
  EXPECT_TRUE(has(m, "· flag off using token ***"));
  // What failed and why, and what was changed.
  EXPECT_TRUE(has(m, "step 3 'Verify', failed (retried): ")) << m;
  EXPECT_TRUE(has(m, "the error rate is still 5%"));
  EXPECT_TRUE(has(m, "### Backups made"));
  EXPECT_TRUE(has(m, w.dir / "app/config.ini.bak-"));
  EXPECT_TRUE(has(m, "(previous, from fs.write"));
  EXPECT_TRUE(has(m, "POST " + w.server.url("/api/feature-flags/toggle") + " → 200"));

  auto js = run_cli({"report", "last", "--format", "json"}, w.env());
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_FALSE(has(js.out, "tok-9f8e7d6c5b4a"));
  json r = json::parse(js.out);
  EXPECT_EQ(r["runbook"]["name"], "flag-off");
  EXPECT_EQ(r["runbook"]["version"], "3.0.1");
  EXPECT_EQ(r["runbook"]["sha256"], sha256_file(w.dir / "rb.lua"));
  EXPECT_FALSE(r["who"]["user"].get<std::string>().empty());
  EXPECT_FALSE(r["who"]["host"].get<std::string>().empty());
  EXPECT_EQ(r["mode"], "live");
  EXPECT_EQ(r["outcome"], "succeeded");
  EXPECT_EQ(r["params"]["token"], "***");
  EXPECT_EQ(r["trigger"], "checkout errors at 5%");
  EXPECT_GT(r["recovery_ms"].get<int64_t>(), 0);
  ASSERT_EQ(r["requests"].size(), 1u);
  EXPECT_EQ(r["requests"][0]["method"], "POST");
  EXPECT_EQ(r["requests"][0]["status"], 200);
  ASSERT_EQ(r["backups"].size(), 2u);
  EXPECT_EQ(r["backups"][0]["name"], "fs.backup");
  EXPECT_TRUE(std::filesystem::exists(r["backups"][0]["path"].get<std::string>()));
  EXPECT_EQ(r["backups"][1]["what"], "previous");
  EXPECT_EQ(read_file(r["backups"][1]["path"]), "checkout=on\n") << "the replaced content, kept";
  EXPECT_EQ(r["changes"].size(), 4u);  // backup, write, post, marker write
  ASSERT_EQ(r["failures"].size(), 1u);
  EXPECT_EQ(r["failures"][0]["step_name"], "Verify");
  EXPECT_TRUE(r["failures"][0]["retried"].get<bool>());
  int effects = 0, steps = 0;
  for (const auto& e : r["timeline"]) {
    effects += e["type"] == "effect";
    steps += e["type"] == "step";
    if (e["type"] == "effect") {
      EXPECT_TRUE(e.contains("duration_ms") && e.contains("at"));
    }
  }
  EXPECT_EQ(steps, 4);    // 1, 2, 3 twice
  EXPECT_EQ(effects, 6);

  // -o writes the file.
  auto to_file = run_cli({"report", "1", "-o", w.dir / "incident.md"}, w.env());
  ASSERT_EQ(to_file.code, 0) << to_file.err;
  EXPECT_EQ(read_file(w.dir / "incident.md"), m);
  EXPECT_EQ(run_cli({"report", "1", "--format", "pdf"}, w.env()).code, 2);
}

TEST(Report, FailedAndResumedRunsAreOneIncident) {
  World w;
  write_file(w.dir / "rb.lua", kFlagOff);
  write_file(w.dir / "srv/post_status", "503");
  auto failed = run_cli(w.exec(w.dir / "rb.lua"), w.env());
  ASSERT_EQ(failed.code, 1);
  auto md = run_cli({"report", "last"}, w.env());
  EXPECT_TRUE(has(md.out, "— failed")) << md.out;
  EXPECT_TRUE(has(md.out, "Verification: partial"));  // the backup and write were made
  EXPECT_TRUE(has(md.out, "step 2 'Turn the flag off', failed: ")) << md.out;
  EXPECT_TRUE(has(md.out, "503"));
  EXPECT_TRUE(has(md.out, "→ 503"));

  std::filesystem::remove(w.dir / "srv/post_status");
  auto resumed = run_cli({"resume", "last", "-p", "token=tok-9f8e7d6c5b4a"}, w.env());
  ASSERT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  auto js = run_cli({"report", "2", "--format", "json"}, w.env());
  json r = json::parse(js.out);
  ASSERT_EQ(r["runs"].size(), 2u);
  EXPECT_EQ(r["runs"][0]["outcome"], "failed");
  EXPECT_EQ(r["runs"][1]["mode"], "resume");
  EXPECT_EQ(r["outcome"], "succeeded");
  EXPECT_EQ(r["requests"].size(), 2u);  // refused, then accepted
  // Changes made once: the backup belongs to run #1 and is not reported again for run #2.
  int backups_by_2 = 0;
  for (const auto& b : r["backups"]) backups_by_2 += b["run"] == 2 && b["name"] == "fs.backup";
  EXPECT_EQ(backups_by_2, 0);
  EXPECT_EQ(js.out, run_cli({"report", "1", "--format", "json"}, w.env()).out) << "same incident";
  EXPECT_FALSE(has(js.out, "tok-9f8e7d6c5b4a"));
}

TEST(Versions, RunsRecordVersionHashModulesAndGitCommit) {
  World w;
  std::string repo = w.dir / "books";
  write_file(repo + "/helpers.lua", "return { greet = function() return 'hi' end }\n");
  write_file(repo + "/rb.lua", std::string("local h = require('helpers')\n") + kFlagOff);
  auto git = [&](std::vector<std::string> args) {
    os::ProcessSpec s;
    s.argv = {"git", "-C", repo};
    s.argv.insert(s.argv.end(), args.begin(), args.end());
    s.env = {{"GIT_AUTHOR_NAME", "t"}, {"GIT_AUTHOR_EMAIL", "t@x"}, {"GIT_COMMITTER_NAME", "t"},
             {"GIT_COMMITTER_EMAIL", "t@x"}};
    auto r = os::run_process(s);
    EXPECT_EQ(r.code, 0) << r.stderr_text;
    return trim(r.stdout_text);
  };
  git({"init", "-q"});
  git({"add", "."});
  git({"commit", "-q", "-m", "flag-off 3.0.1"});
  std::string head = git({"rev-parse", "HEAD"});

  ASSERT_EQ(run_cli(w.exec(repo + "/rb.lua"), w.env()).code, 0);
  // An unreviewed local edit, then a run of it.
  write_file(repo + "/rb.lua", read_file(repo + "/rb.lua") + "-- hotfix\n");
  ASSERT_EQ(run_cli(w.exec(repo + "/rb.lua", {"--dry-run"}), w.env()).code, 0);
  // Another runbook, elsewhere, outside any repository... but /tmp may be inside none: fine.
  write_file(w.dir / "other.lua", "runbook{ name = 'other', version = '0.1.0' }\nstep('a', function() time.now() end)\n");
  ASSERT_EQ(run_cli({"exec", w.dir / "other.lua"}, w.env()).code, 0);

  auto runs = run_cli({"runs", "--runbook", "flag-off", "--json"}, w.env());
  ASSERT_EQ(runs.code, 0);
  auto ev = runs.events();
  ASSERT_EQ(ev.size(), 2u) << runs.out;
  EXPECT_EQ(ev[1]["git_commit"], head);
  EXPECT_EQ(ev[1]["git_dirty"], false);
  EXPECT_EQ(ev[1]["version"], "3.0.1");
  EXPECT_EQ(ev[1]["modules"]["helpers"], sha256_file(repo + "/helpers.lua"));
  EXPECT_EQ(ev[0]["git_commit"], head);
  EXPECT_EQ(ev[0]["git_dirty"], true);
  EXPECT_EQ(ev[0]["extra"]["git"]["status"], "modified");
  EXPECT_NE(ev[0]["sha256"], ev[1]["sha256"]);

  auto table = run_cli({"runs", "--runbook", "flag-off"}, w.env());
  EXPECT_TRUE(has(table.out, head.substr(0, 7) + "+")) << table.out;
  EXPECT_TRUE(has(table.out, "versions of flag-off:"));
  EXPECT_FALSE(has(table.out, "other"));

  auto show = run_cli({"show", "1"}, w.env());
  EXPECT_TRUE(has(show.out, "version   3.0.1")) << show.out;
  EXPECT_TRUE(has(show.out, "git       " + head + " (file as committed)"));
  EXPECT_TRUE(has(show.out, "module    helpers  sha256 " + sha256_file(repo + "/helpers.lua")));
  auto show2 = run_cli({"show", "2"}, w.env());
  EXPECT_TRUE(has(show2.out, "(file modified since the commit)")) << show2.out;
}

TEST(Stats, RunsOutcomesTimeToRecoverAndCauses) {
  World w;
  write_file(w.dir / "rb.lua", kFlagOff);
  write_file(w.dir / "quick.lua", "runbook{ name = 'quick', version = '1.0.0' }\nstep('a', function() sleep('300ms') end)\n");
  ASSERT_EQ(run_cli({"exec", w.dir / "quick.lua"}, w.env()).code, 0);
  ASSERT_EQ(run_cli({"exec", w.dir / "quick.lua"}, w.env()).code, 0);
  ASSERT_EQ(run_cli({"exec", w.dir / "quick.lua", "--dry-run"}, w.env()).code, 0);
  write_file(w.dir / "srv/post_status", "503");
  ASSERT_EQ(run_cli(w.exec(w.dir / "rb.lua"), w.env()).code, 1);  // cause: http.post
  ASSERT_EQ(run_cli(w.exec(w.dir / "rb.lua"), w.env()).code, 1);  // and again
  std::filesystem::remove(w.dir / "srv/post_status");
  ASSERT_EQ(run_cli(w.exec(w.dir / "rb.lua"), w.env()).code, 0);
  // A crash, resumed: one recovery, from the first start to the resume's end.
  auto env = w.env();
  env["RUNBOOK_CRASH_AT"] = "done:2";
  ASSERT_EQ(run_cli(w.exec(w.dir / "rb.lua"), env).code, 128 + SIGKILL);
  ASSERT_EQ(run_cli({"resume", "last", "-p", "token=tok-9f8e7d6c5b4a"}, w.env()).code, 0);

  auto st = run_cli({"stats", "--json"}, w.env());
  ASSERT_EQ(st.code, 0) << st.err;
  json s = json::parse(st.out);
  EXPECT_EQ(s["total_runs"], 8);
  const json& q = s["runbooks"]["quick"];
  EXPECT_EQ(q["runs"], 3);
  EXPECT_EQ(q["by_mode"]["dry-run"], 1);
  EXPECT_EQ(q["recoveries"], 2);
  EXPECT_GE(q["mean_recovery_ms"].get<int64_t>(), 300);
  const json& f = s["runbooks"]["flag-off"];
  EXPECT_EQ(f["runs"], 5);
  EXPECT_EQ(f["by_outcome"]["failed"], 2);
  EXPECT_EQ(f["by_outcome"]["crashed"], 1);
  EXPECT_EQ(f["by_outcome"]["succeeded"], 2);
  EXPECT_EQ(f["recoveries"], 4);  // two failed, the good one, the crashed-and-resumed one
  EXPECT_EQ(f["recovered"], 2);
  EXPECT_GE(f["worst_recovery_ms"].get<int64_t>(), f["mean_recovery_ms"].get<int64_t>());
  EXPECT_EQ(s["by_cause"]["http.post"], 2);
  EXPECT_EQ(s["by_cause"]["(process died)"], 1);
  EXPECT_EQ(s["statistics"]["total_rollbacks"], 6);
  EXPECT_EQ(s["statistics"]["most_common_cause"], "http.post");

  auto text = run_cli({"stats"}, w.env());
  EXPECT_TRUE(has(text.out, "flag-off")) << text.out;
  EXPECT_TRUE(has(text.out, "http.post"));
  auto none = run_cli({"stats", "--json", "--since", "2999-01-01"}, w.env());
  EXPECT_EQ(json::parse(none.out)["total_runs"], 0);
  auto recent = run_cli({"stats", "--json", "--since", "1h"}, w.env());
  EXPECT_EQ(json::parse(recent.out)["total_runs"], 8);
  EXPECT_EQ(run_cli({"stats", "--since", "last tuesday"}, w.env()).code, 2);
}

TEST(Report, CommitsMovedAndTheBackupRefsThatKeepThem) {
  TempDir d;
  std::string repo = d / "repo";
  auto git = [&](std::vector<std::string> args) {
    os::ProcessSpec s;
    s.argv = {"git", "-C", repo};
    s.argv.insert(s.argv.end(), args.begin(), args.end());
    s.env = {{"GIT_AUTHOR_NAME", "t"}, {"GIT_AUTHOR_EMAIL", "t@x"}, {"GIT_COMMITTER_NAME", "t"},
             {"GIT_COMMITTER_EMAIL", "t@x"}};
    auto r = os::run_process(s);
    EXPECT_EQ(r.code, 0) << r.stderr_text;
    return trim(r.stdout_text);
  };
  write_file(repo + "/app.py", "v1\n");
  git({"init", "-q"});
  git({"add", "."});
  git({"commit", "-q", "-m", "v1"});
  std::string v1 = git({"rev-parse", "HEAD"});
  write_file(repo + "/app.py", "v2\n");
  git({"commit", "-q", "-am", "v2"});
  std::string v2 = git({"rev-parse", "HEAD"});
  write_file(d / "rb.lua", R"(
runbook{ name = "git-back", version = "1.0.0", params = { repo = { type = "path", required = true } } }
step("Roll back", function(p)
  git.reset{ repo = p.repo, ref = "HEAD~1", hard = true }
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}};
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "-p", "repo=" + repo}, env).code, 0);
  ASSERT_EQ(git({"rev-parse", "HEAD"}), v1);
  json r = json::parse(run_cli({"report", "last", "--format", "json"}, env).out);
  ASSERT_EQ(r["commits"].size(), 1u);
  EXPECT_EQ(r["commits"][0]["previous"], v2);
  EXPECT_EQ(r["commits"][0]["commit"], v1);
  ASSERT_GE(r["backups"].size(), 1u);
  std::string ref = r["backups"][0]["path"];
  EXPECT_EQ(git({"rev-parse", ref}), v2) << "the backup ref keeps what the reset moved away from";
  auto md = run_cli({"report", "last"}, env).out;
  EXPECT_TRUE(has(md, "`" + v2.substr(0, 12) + "` → `" + v1.substr(0, 12) + "`")) << md;
}

// A step's log lines written after its last effect stay with that step in the timeline.
TEST(Report, TimelineKeepsAStepsTrailingLogLinesWithIt) {
  TempDir d;
  std::string file = d / "order.lua";
  write_file(file, R"(
runbook { name = "order", version = "1.0.0" }
step("first", function() env.get("HOME"); log.info("said by the first step") end)
step("second", function() env.get("HOME") end)
)");
  auto r = run_cli({"exec", file, "--journal", d / "j.db"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto md = run_cli({"report", "last", "--format", "md", "--journal", d / "j.db"});
  ASSERT_EQ(md.code, 0) << md.err;
  size_t said = md.out.find("said by the first step"), second = md.out.find("Step 2 second");
  ASSERT_NE(said, std::string::npos) << md.out;
  ASSERT_NE(second, std::string::npos) << md.out;
  EXPECT_LT(said, second) << md.out;
}

// An assessment (report.trigger) is what the incident record names as the trigger, with its
// numbers; it changes nothing, so a dry-run records it too.
TEST(Report, AnAssessmentIsTheTriggerWithItsNumbers) {
  TempDir d;
  write_file(d / "assess.lua", R"LUA(
runbook { name = "assess", version = "1.0.0", params = { reason = { type = "string", default = "pager" } } }
step("Assess", function(p)
  local t = report.trigger{ level = "RED", decision = "rollback",
                            reasons = { "5 of 12 endpoints fail (41.7 % > 5 %)" },
                            measures = { endpoints_failing_pct = 41.7, p95_ms = 820 } }
  assert(t.text == "RED: rollback (5 of 12 endpoints fail (41.7 % > 5 %))", t.text)
end)
)LUA");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "journal.db"}};
  auto live = run_cli({"exec", d / "assess.lua"}, env);
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  EXPECT_NE(live.out.find("trigger: RED: rollback"), std::string::npos) << live.out;
  auto md = run_cli({"report", "1"}, env);
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_NE(md.out.find("Trigger: RED: rollback (5 of 12 endpoints fail (41.7 % > 5 %))"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("## Assessment"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("| endpoints_failing_pct | 41.7 |"), std::string::npos) << md.out;
  auto js = run_cli({"report", "1", "--format", "json"}, env);
  json r = json::parse(js.out);
  EXPECT_EQ(r["assessment"]["level"], "RED");
  EXPECT_EQ(r["assessment"]["measures"]["p95_ms"], 820);
  auto dry = run_cli({"exec", d / "assess.lua", "--dry-run"}, env);
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  auto dmd = run_cli({"report", "2"}, env);
  EXPECT_NE(dmd.out.find("Trigger: RED: rollback"), std::string::npos) << dmd.out;
}
