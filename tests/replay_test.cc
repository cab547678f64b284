// `runbook replay`: the same transcript as the original run, with nothing touched — no request
// sent, no file changed, no time slept — and, against a changed file, the first divergence.
#include <gtest/gtest.h>

#include <chrono>

#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

// Real work of every kind the journal must answer: clock, environment, random numbers, a prompt,
// an HTTP change, files, a program, a failure taken with check = false, a 5 s sleep, a retry.
const char* kRollback = R"(
runbook {
  name = "flag-rollback",
  version = "2.1.0",
  params = {
    root  = { type = "path", required = true },
    url   = { type = "url", required = true },
    token = { type = "string", secret = true, required = true },
  },
}

step("Look around", function(p)
  local t = time.now()
  local who = env.get("ROLLBACK_OPERATOR", "nobody")
  local ticket = math.random(100000, 999999)
  local h = http.get{ url = p.url .. "/health" }
  fs.write(p.root .. "/incident.txt", "ticket " .. ticket .. " by " .. who .. " at " .. t ..
           " health " .. h.status .. "\n")
end)

step("Disable the flag", function(p)
  confirm("disable the flag?")
  local r = http.post{ url = p.url .. "/flags", json = { flag = "checkout", enabled = false },
                       headers = { Authorization = "Bearer " .. p.token } }
  local probe = exec{ "false", check = false }
  sleep("5s")
  fs.write(p.root .. "/flag.txt", "status " .. r.status .. " probe ok " .. tostring(probe.ok) .. "\n")
end)

step{ "Settle", retries = 1, retry_delay = "3s", run = function(p)
  if not fs.exists(p.root .. "/second-try") then
    fs.write(p.root .. "/second-try", "x")
    error("not settled yet")
  end
  log.info("settled")
end }
)";

struct World {
  TempDir dir;
  HttpServer server{dir / "srv"};
  std::string work = dir / "work";
  World() { write_file(work + "/README", "the application's directory\n"); }
  std::map<std::string, std::string> env(std::map<std::string, std::string> more = {}) const {
    more["RUNBOOK_JOURNAL"] = dir / "journal.db";
    return more;
  }
  std::vector<std::string> params() const {
    return {"-p", "root=" + work, "-p", "url=" + server.url(""), "-p", "token=t0k-SECRET-42"};
  }
};

// What a transcript must agree on: each effect's number, name, status and result; each step's
// outcome; the run's outcome. (Durations are the journal's, not re-measured.)
std::vector<std::string> transcript(const CliResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.events()) {
    std::string ev = e.value("type", std::string());
    if (ev == "effect")
      out.push_back("effect " + std::to_string(e["seq"].get<int>()) + " " + e["name"].get<std::string>() +
                    " " + e["status"].get<std::string>() + " " + e["result"].dump());
    else if (ev == "step_end")
      out.push_back("step " + std::to_string(e["step"].get<int>()) + " " + e["outcome"].get<std::string>());
    else if (ev == "run_end")
      out.push_back("run " + e["outcome"].get<std::string>());
  }
  return out;
}

int64_t count_runs(const std::string& journal) {
  Journal j(journal);
  RunFilter f;
  f.limit = 0;
  return static_cast<int64_t>(j.runs(f).size());
}

}  // namespace

TEST(Replay, SameTranscriptAndNothingTouchedNotEvenTime) {
  World w;
  write_file(w.dir / "rb.lua", kRollback);
  std::vector<std::string> args = {"exec", w.dir / "rb.lua", "--json", "--yes"};
  for (const auto& p : w.params()) args.push_back(p);
  auto live = run_cli(args, w.env({{"ROLLBACK_OPERATOR", "alice"}}));
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  auto original = transcript(live);
  ASSERT_GE(original.size(), 12u);
  int posts = w.server.changing_requests();
  ASSERT_EQ(posts, 1);
  std::string tree = sha256_tree(w.work);
  int64_t runs = count_runs(w.dir / "journal.db");

  // No operator variable, no --yes, no terminal: the journal answers the prompt and env.get.
  auto t0 = std::chrono::steady_clock::now();
  auto replay = run_cli({"replay", "last", "--json"}, w.env());
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(transcript(replay), original);
  // A 5 s sleep and a 3 s retry delay in the original; neither in the replay.
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_EQ(w.server.changing_requests(), posts);
  EXPECT_EQ(sha256_tree(w.work), tree);
  EXPECT_EQ(count_runs(w.dir / "journal.db"), runs) << "a replay is not journaled";
  bool matched = false;
  for (const auto& e : replay.events())
    if (e.value("type", "") == "replay_end") matched = e.value("matches", false);
  EXPECT_TRUE(matched);
  EXPECT_EQ(replay.out.find("t0k-SECRET-42"), std::string::npos);

  // The human form says so too.
  auto human = run_cli({"replay", "last"}, w.env());
  EXPECT_EQ(human.code, 0) << human.out << human.err;
  EXPECT_NE(human.out.find("the replay matches run #1"), std::string::npos) << human.out;
}

TEST(Replay, FailedAndDryRunAndCrashedRunsReplayToo) {
  World w;
  write_file(w.dir / "rb.lua", kRollback);
  auto with = [&](std::vector<std::string> a) {
    for (const auto& p : w.params()) a.push_back(p);
    return a;
  };
  // Failed: the flag service answers 500.
  write_file(w.dir / "srv/post_status", "500");
  auto failed = run_cli(with({"exec", w.dir / "rb.lua", "--json", "--yes"}), w.env());
  ASSERT_EQ(failed.code, 1) << failed.out << failed.err;
  auto r1 = run_cli({"replay", "last", "--json"}, w.env());
  EXPECT_EQ(r1.code, 0) << r1.out << r1.err;
  EXPECT_EQ(transcript(r1), transcript(failed));
  EXPECT_NE(transcript(r1).back().find("run failed"), std::string::npos);

  // Dry-run: the planned changes are answered as planned.
  auto dry = run_cli(with({"exec", w.dir / "rb.lua", "--json", "--dry-run"}), w.env());
  // The retry step settles on its second attempt, as live: the marker its first attempt plans
  // to write is predicted to exist.
  ASSERT_EQ(dry.code, 0) << dry.out;
  EXPECT_NE(dry.out.find("\"status\":\"predicted\""), std::string::npos) << dry.out;
  auto r2 = run_cli({"replay", "last", "--json"}, w.env());
  EXPECT_EQ(r2.code, 0) << r2.out << r2.err;
  EXPECT_EQ(transcript(r2), transcript(dry));
  EXPECT_NE(r2.out.find("\"status\":\"planned\""), std::string::npos);

  // Crashed (SIGKILL while the flag POST is in doubt): the replay ends where the journal does.
  std::remove((w.dir / "srv/post_status").c_str());
  auto crashed = run_cli(with({"exec", w.dir / "rb.lua", "--json", "--yes"}),
                         w.env({{"RUNBOOK_CRASH_AT", "after:6"}}));
  ASSERT_EQ(crashed.code, 128 + 9) << crashed.out << crashed.err;
  int posts = w.server.changing_requests();
  auto r3 = run_cli({"replay", "last", "--json"}, w.env());
  EXPECT_EQ(r3.code, 0) << r3.out << r3.err;
  auto t3 = transcript(r3);
  ASSERT_FALSE(t3.empty());
  EXPECT_EQ(t3.back(), "run interrupted");
  int effects = 0;
  for (const auto& e : r3.events()) effects += e.value("type", "") == "effect";
  EXPECT_EQ(effects, 5) << "answered up to the one in doubt";
  EXPECT_EQ(w.server.changing_requests(), posts);
}

TEST(Replay, RefusesAChangedFileAndAgainstShowsTheFirstDivergence) {
  World w;
  write_file(w.dir / "rb.lua", kRollback);
  std::vector<std::string> args = {"exec", w.dir / "rb.lua", "--yes"};
  for (const auto& p : w.params()) args.push_back(p);
  ASSERT_EQ(run_cli(args, w.env()).code, 0);

  // Someone edits the runbook afterwards: the flag's JSON changes, on line 23.
  std::string edited = kRollback;
  edited.replace(edited.find("enabled = false"), 15, "enabled = true ");
  write_file(w.dir / "rb.lua", edited);
  auto refused = run_cli({"replay", "1"}, w.env());
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("has changed since run #1"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--against"), std::string::npos) << refused.err;

  auto diverged = run_cli({"replay", "1", "--against", w.dir / "rb.lua", "--json"}, w.env());
  EXPECT_EQ(diverged.code, 1) << diverged.out << diverged.err;
  json d;
  for (const auto& e : diverged.events())
    if (e.value("type", "") == "divergence") d = e;
  ASSERT_TRUE(d.is_object()) << diverged.out;
  EXPECT_EQ(d["reason"], "differs");
  EXPECT_EQ(d["step"], 2);
  EXPECT_EQ(d["step_name"], "Disable the flag");
  EXPECT_EQ(d["effect"], 6);
  EXPECT_EQ(d["expected"]["name"], "http.post");
  EXPECT_EQ(d["expected"]["args"]["json"]["enabled"], false);
  EXPECT_EQ(d["actual"]["name"], "http.post");
  EXPECT_EQ(d["actual"]["args"]["json"]["enabled"], true);
  EXPECT_EQ(d["actual"]["site"], w.dir / "rb.lua:23:");
  EXPECT_EQ(d["actual"]["args"]["headers"]["Authorization"], "Bearer ***");

  auto human = run_cli({"replay", "1", "--against", w.dir / "rb.lua"}, w.env());
  EXPECT_EQ(human.code, 1);
  EXPECT_NE(human.out.find("departs from run #1 at effect #6 in step 2 'Disable the flag'"),
            std::string::npos) << human.out;
  EXPECT_NE(human.out.find("expected (journal): http.post"), std::string::npos);
  EXPECT_NE(human.out.find("\"enabled\":true"), std::string::npos);
  EXPECT_NE(human.out.find("rb.lua:23"), std::string::npos);
  EXPECT_EQ(w.server.changing_requests(), 1) << "the divergent call was not performed";

  // A version that stops earlier: the first effect it no longer makes is reported.
  std::string shorter = kRollback;
  shorter = shorter.substr(0, shorter.find("step{ \"Settle\""));
  write_file(w.dir / "short.lua", shorter);
  auto missing = run_cli({"replay", "1", "--against", w.dir / "short.lua", "--json"}, w.env());
  EXPECT_EQ(missing.code, 1);
  json m;
  for (const auto& e : missing.events())
    if (e.value("type", "") == "divergence") m = e;
  ASSERT_TRUE(m.is_object()) << missing.out;
  EXPECT_EQ(m["reason"], "missing");
  EXPECT_EQ(m["expected"]["name"], "fs.exists");
  EXPECT_EQ(m["effect"], 10);

  // The unchanged file, given with --against, matches.
  write_file(w.dir / "same.lua", kRollback);
  EXPECT_EQ(run_cli({"replay", "1", "--against", w.dir / "same.lua"}, w.env()).code, 0);
}

// Lua seeds its string hashing per process, so a plain `pairs` would visit these keys in another
// order in the replay, and the env.get calls inside the loop would diverge. The sandbox's pairs
// visits keys in a fixed order; replayed five times, the run matches every time.
TEST(Replay, PairsVisitsKeysInTheSameOrderInTheReplay) {
  TempDir d;
  std::string file = d / "pairs.lua";
  write_file(file, R"(
runbook { name = "pairs-order", version = "1.0.0" }
step("visit", function()
  local t = {}
  for c in ("abcdefghijklmnopqrstuvwxyz"):gmatch(".") do t[c .. "key"] = true end
  t[3] = 1; t[1] = 1; t[2.5] = 1; t[false] = 1
  local seen = {}
  for k in pairs(t) do seen[#seen + 1] = tostring(k); env.get("RB_PAIRS_" .. tostring(k)) end
  log.info("order " .. table.concat(seen, ","))
end)
)");
  std::string j = d / "j.db";
  auto r = run_cli({"exec", file, "--journal", j});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("order 1,2.5,3,akey,bkey,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("zkey,false"), std::string::npos) << r.out;
  for (int i = 0; i < 5; ++i) {
    auto rp = run_cli({"replay", "last", "--journal", j});
    EXPECT_EQ(rp.code, 0) << rp.out << rp.err;
  }
}
