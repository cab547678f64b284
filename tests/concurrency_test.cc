// Many processes, one journal; a full disk; a killed run; large values. Real `runbook` processes
// of the built binary, as an operator would start them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/strings.h"
#include "journal/journal.h"
#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

std::string integrity(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr);
  std::string out = sqlite3_step(s) == SQLITE_ROW
                        ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0))
                        : sqlite3_errmsg(db);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

// A book that probes, changes, logs and waits a little, in its own directory.
std::string busy_book(const std::string& name) {
  return R"(
runbook { name = ")" + name + R"(", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("probe and change", function(p)
  for i = 1, 20 do fs.exists(p.root .. "/f" .. i) end
  for i = 1, 3 do
    fs.write{ path = p.root .. "/f" .. i, content = "v" .. i }
    log.info("wrote " .. i)
  end
  exec{ "sleep", "0.2", readonly = true }
end)
step("check", function(p)
  for i = 1, 3 do assert(fs.read(p.root .. "/f" .. i) == "v" .. i) end
  exec{ "sleep", "0.1", readonly = true }
end)
)";
}

std::map<std::string, std::string> quiet() { return {{"NO_COLOR", "1"}}; }

}  // namespace

TEST(Concurrency, TwentyRunsAtOnceOnOneJournalAllSucceedAndAreJournaled) {
  TempDir d;
  const int n = 20;
  std::vector<CliResult> res(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    std::string dir = d / ("t" + std::to_string(i));
    stdfs::create_directories(dir);
    write_file(d / ("b" + std::to_string(i) + ".lua"), busy_book("book-" + std::to_string(i)));
  }
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      res[i] = run_cli({"exec", d / ("b" + std::to_string(i) + ".lua"), "-p",
                        "root=" + d / ("t" + std::to_string(i)), "--journal", d / "j.db"},
                       quiet(), 120);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(res[i].code, 0) << "run " << i << ":\n" << res[i].out << res[i].err;
    EXPECT_EQ(res[i].err.find("locked"), std::string::npos) << res[i].err;
  }
  Journal j(d / "j.db");
  RunFilter f;
  f.limit = 0;
  auto runs = j.runs(f);
  ASSERT_EQ(runs.size(), static_cast<size_t>(n));
  for (const auto& r : runs) {
    EXPECT_EQ(r.outcome, "succeeded") << r.runbook << ": " << r.error;
    EXPECT_EQ(j.effects(r.id).size(), 20u + 3u + 1u + 3u + 1u) << r.runbook;
    EXPECT_EQ(j.logs(r.id).size(), 3u) << r.runbook;
    EXPECT_EQ(j.steps(r.id).size(), 2u) << r.runbook;
  }
  EXPECT_EQ(integrity(d / "j.db"), "ok");
}

// The lock-out of issue 8: one run inside a 10-second wait held the journal's write lock and the
// other failed after 5 s with "database is locked". Now the other is not slowed at all.
TEST(Concurrency, ARunBesideATenSecondProbeIsNotDelayed) {
  TempDir d;
  HttpServer server(d.path());
  server.set_status(503);
  write_file(d / "waits.lua", R"(
runbook { name = "waits", version = "1.0.0", params = { url = { type = "string", required = true }, root = { type = "path", required = true } } }
step("wait", function(p)
  fs.write{ path = p.root .. "/before", content = "x" }
  fs.exists(p.root .. "/before")
  log.info("waiting for " .. p.url)
  http.wait_healthy{ p.url, timeout = "40s", interval = "200ms" }
  fs.write{ path = p.root .. "/after", content = "x" }
end)
)");
  stdfs::create_directories(d / "w");
  stdfs::create_directories(d / "q");
  write_file(d / "quick.lua", busy_book("quick"));
  std::vector<std::string> quick = {"exec", d / "quick.lua", "-p", "root=" + d / "q", "--journal",
                                    d / "j.db"};
  // How long the quick run takes alone (the better of two).
  int64_t alone = INT64_MAX;
  for (int i = 0; i < 2; ++i) {
    auto t0 = Clock::now();
    auto r = run_cli(quick, quiet());
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    alone = std::min(alone, ms_since(t0));
  }
  auto start = Clock::now();
  CliResult waited;
  std::thread long_run([&] {
    waited = run_cli({"exec", d / "waits.lua", "-p", "url=" + server.url("/health"), "-p",
                      "root=" + d / "w", "--journal", d / "j.db"},
                     quiet(), 120);
  });
  std::thread healer([&] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    server.set_status(200);
  });
  // Well inside the wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  ASSERT_FALSE(stdfs::exists(d / "w/after"));
  auto t0 = Clock::now();
  auto beside = run_cli(quick, quiet());
  int64_t took = ms_since(t0);
  bool still_waiting = !stdfs::exists(d / "w/after");
  healer.join();
  long_run.join();
  EXPECT_EQ(beside.code, 0) << beside.out << beside.err;
  EXPECT_TRUE(still_waiting) << "the long run was over before the quick one ended: nothing tested";
  EXPECT_LE(took, alone + 1000) << "alone " << alone << " ms, beside the wait " << took << " ms";
  EXPECT_EQ(waited.code, 0) << waited.out << waited.err;
  EXPECT_GE(ms_since(start), 9500);
  EXPECT_TRUE(stdfs::exists(d / "w/after"));
  Journal j(d / "j.db");
  RunFilter f;
  for (const auto& r : j.runs(f)) EXPECT_EQ(r.outcome, "succeeded") << r.runbook << " #" << r.id;
  EXPECT_EQ(j.runs(f).size(), 4u);
  EXPECT_EQ(integrity(d / "j.db"), "ok");
}

namespace {

// A real 2 MiB tmpfs, unmounted at the end.
struct Tmpfs {
  std::string dir, error;
  explicit Tmpfs(const std::string& d) : dir(d) {
    stdfs::create_directories(dir);
    os::ProcessSpec spec;
    spec.argv = {"mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir};
    spec.timeout = std::chrono::milliseconds(20000);
    auto r = os::run_process(spec);
    if (r.code != 0)
      error = "cannot mount a tmpfs at " + dir + " (the test needs root: mount -t tmpfs): " +
              r.stderr_text + r.spawn_error;
  }
  ~Tmpfs() {
    if (!error.empty()) return;
    os::ProcessSpec spec;
    spec.argv = {"umount", "-l", dir};
    spec.timeout = std::chrono::milliseconds(20000);
    os::run_process(spec);
  }
};

}  // namespace

// The journal's disk fills up in the middle of a step: the step stops at the next effect with
// "journal: disk full", no change acts whose begun row was not written, the always step is tried,
// exit 1; once there is room again the run shows as crashed and resumes to the end.
TEST(Concurrency, AFullDiskIsACleanStopAndTheRunResumes) {
  TempDir d;
  Tmpfs disk(d / "disk");
  ASSERT_TRUE(disk.error.empty()) << disk.error;
  stdfs::create_directories(d / "out");
  std::string journal = d / "disk/j.db";
  write_file(d / "fills.lua", R"(
runbook { name = "fills", version = "1.0.0", params = { disk = { type = "path", required = true }, out = { type = "path", required = true } } }
step("fill", function(p)
  -- All but about 100 KB of the journal's disk goes to another file; the journal then fills it.
  exec{ "sh", "-c", "avail=$(df --output=avail -k " .. p.disk .. " | tail -1); " ..
        "head -c $(( (avail - 100) * 1024 )) /dev/zero > " .. p.disk .. "/filler; true" }
  for i = 1, 40 do
    fs.write{ path = p.out .. "/n" .. i, content = string.rep("c", 8000) .. i }
  end
end)
step("after", function(p) fs.write{ path = p.out .. "/after", content = "x" } end)
step{ "cleanup", always = true, run = function(p)
  fs.write{ path = p.out .. "/cleanup", content = "x" }
end }
)");
  std::vector<std::string> args = {"exec", d / "fills.lua", "-p", "disk=" + d / "disk",
                                   "-p", "out=" + d / "out", "--journal", journal, "--json"};
  auto r = run_cli(args, quiet());
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("journal: disk full ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("runbook resume "), std::string::npos) << r.err;
  bool cleanup_tried = false, stopped_by_journal = false;
  for (const auto& e : r.events()) {
    if (e.value("type", "") == "step_begin" && e.value("name", "") == "cleanup") cleanup_tried = true;
    if (e.value("type", "") == "step_end" && e.value("name", "") == "fill")
      stopped_by_journal = e.value("error", "").find("journal: disk full") != std::string::npos;
  }
  EXPECT_TRUE(cleanup_tried) << r.out;
  EXPECT_TRUE(stopped_by_journal) << r.out;
  EXPECT_FALSE(stdfs::exists(d / "out/after"));
  int written = 0;
  for (int i = 1; i <= 40; ++i) written += stdfs::exists(d / ("out/n" + std::to_string(i)));
  EXPECT_LT(written, 40) << "the disk never filled: nothing tested";

  // Room again.
  stdfs::remove(d / "disk/filler");
  EXPECT_EQ(integrity(journal), "ok");
  int64_t id = 0;
  {
    Journal j(journal);
    auto run = j.run(*j.last_run_id());
    id = run->id;
    // Every change that acted has its begun row: none acted unjournaled.
    int journaled = 0;
    for (const auto& e : j.effects(id))
      if (e.name == "fs.write" && e.args.value("path", "").find("/out/n") != std::string::npos)
        ++journaled;
    EXPECT_EQ(journaled, written);
  }
  auto runs = run_cli({"runs", "--journal", journal, "--json"}, quiet());
  ASSERT_FALSE(runs.events().empty()) << runs.out << runs.err;
  EXPECT_EQ(runs.events()[0].value("outcome", ""), "crashed") << runs.out;
  auto resumed = run_cli({"resume", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  for (int i = 1; i <= 40; ++i) EXPECT_TRUE(stdfs::exists(d / ("out/n" + std::to_string(i)))) << i;
  EXPECT_TRUE(stdfs::exists(d / "out/after"));
  EXPECT_TRUE(stdfs::exists(d / "out/cleanup"));
  EXPECT_EQ(integrity(journal), "ok");
}

TEST(Concurrency, AKilledRunShowsAsCrashedAndResumes) {
  TempDir d;
  write_file(d / "slow.lua", R"(
runbook { name = "slow", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("first", function(p) fs.write{ path = p.root .. "/first", content = "x" } end)
step("wait", function(p)
  exec{ "sh", "-c", "while [ ! -f " .. p.root .. "/go ]; do sleep 0.1; done", readonly = true, timeout = "60s" }
end)
step("last", function(p) fs.write{ path = p.root .. "/last", content = "x" } end)
)");
  std::string journal = d / "j.db";
  Child run({RUNBOOK_BIN, "exec", d / "slow.lua", "-p", "root=" + d.path(), "--journal", journal},
            quiet(), d / "run.log");
  // Until the run is inside step 2.
  int64_t id = 0;
  for (int i = 0; i < 300 && !id; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!stdfs::exists(journal)) continue;
    Journal j(journal);
    auto last = j.last_run_id();
    if (last && j.steps(*last).size() >= 2) id = *last;
  }
  ASSERT_NE(id, 0) << read_file(d / "run.log");
  {
    auto shown = run_cli({"runs", "--journal", journal, "--json"}, quiet());
    ASSERT_FALSE(shown.events().empty()) << shown.out << shown.err;
    EXPECT_EQ(shown.events()[0].value("outcome", ""), "running");
  }
  ::kill(run.pid(), SIGKILL);
  ::waitpid(run.pid(), nullptr, 0);
  auto listed = run_cli({"runs", "--journal", journal}, quiet());
  EXPECT_NE(listed.out.find("crashed"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("runbook resume " + std::to_string(id)), std::string::npos) << listed.out;
  auto shown = run_cli({"show", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_NE(shown.out.find("crashed"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("runbook resume " + std::to_string(id)), std::string::npos) << shown.out;
  auto report = run_cli({"report", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_NE(report.out.find("crashed"), std::string::npos) << report.out;
  write_file(d / "go", "");
  auto resumed = run_cli({"resume", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(stdfs::exists(d / "last"));
  Journal j(journal);
  EXPECT_EQ(j.run(id)->outcome, "crashed");
  EXPECT_EQ(j.run(*j.last_run_id())->outcome, "succeeded");
}

// The same 10 MB file read three times is stored once; replay and resume get it back whole.
TEST(Concurrency, LargeResultsAreStoredOnceAndReplayAndResumeGetThemBack) {
  TempDir d;
  std::string big;
  big.reserve(10u << 20);
  for (int i = 0; big.size() < (10u << 20); ++i) big += "line " + std::to_string(i) + "\n";
  write_file(d / "big.txt", big);
  write_file(d / "reads.lua", R"(
runbook { name = "reads", version = "1.0.0", params = { root = { type = "path", required = true } } }
local content
step("read", function(p)
  content = fs.read(p.root .. "/big.txt")
  assert(fs.read(p.root .. "/big.txt") == content)
  assert(fs.read(p.root .. "/big.txt") == content)
end)
step("use", function(p)
  assert(fs.exists(p.root .. "/go"), "no go file yet")
  assert(#content == )" + std::to_string(big.size()) + R"(, "got " .. #content .. " bytes")
  fs.write{ path = p.root .. "/size", content = tostring(#content) }
end)
)");
  std::string journal = d / "j.db";
  { Journal init(journal); }
  auto before = stdfs::file_size(journal);
  auto r = run_cli({"exec", d / "reads.lua", "-p", "root=" + d.path(), "--journal", journal}, quiet());
  EXPECT_EQ(r.code, 1) << r.out << r.err;  // no go file yet
  EXPECT_NE((r.out + r.err).find("no go file yet"), std::string::npos) << r.out << r.err;
  ASSERT_FALSE(stdfs::exists(journal + "-wal") && stdfs::file_size(journal + "-wal") > (5u << 20));
  auto grew = static_cast<int64_t>(stdfs::file_size(journal)) - static_cast<int64_t>(before);
  EXPECT_GT(grew, static_cast<int64_t>(big.size()));
  EXPECT_LT(grew, static_cast<int64_t>(big.size()) * 3 / 2) << "grew by " << grew;
  int64_t id = 0;
  {
    Journal j(journal);
    id = *j.last_run_id();
    auto es = j.effects(id);
    ASSERT_GE(es.size(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(es[i].result == big) << "effect " << i + 1;
  }
  auto replay = run_cli({"replay", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  write_file(d / "go", "");
  // The file changes: a resume that read it again would see the new one; it answers from the
  // journal what it read then.
  write_file(d / "big.txt", "changed");
  auto resumed = run_cli({"resume", std::to_string(id), "--journal", journal}, quiet());
  EXPECT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  EXPECT_EQ(read_file(d / "size"), std::to_string(big.size()));
  EXPECT_EQ(integrity(journal), "ok");
}

// An argument over the journal's cap is kept as a head and a digest; the replay still matches it.
TEST(Concurrency, AValueOverTheCapIsCutInTheJournalAndReplayStillMatches) {
  TempDir d;
  write_file(d / "huge.lua", R"(
runbook { name = "huge", version = "1.0.0", params = { root = { type = "path", required = true } } }
step("write", function(p)
  local w = fs.write{ path = p.root .. "/huge", content = string.rep("z", 65 * 1024 * 1024 + 7) }
  log.info(string.rep("l", 200000))
end)
)");
  std::string journal = d / "j.db";
  auto r = run_cli({"exec", d / "huge.lua", "-p", "root=" + d.path(), "--journal", journal}, quiet());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(stdfs::file_size(d / "huge"), 65u * 1024 * 1024 + 7);
  EXPECT_LT(stdfs::file_size(journal), 2u << 20);
  {
    Journal j(journal);
    auto id = *j.last_run_id();
    auto content = j.effects(id)[0].args["content"].get<std::string>();
    EXPECT_NE(content.find("… [truncated: " + std::to_string(65 * 1024 * 1024 + 7) + " bytes, sha256 "),
              std::string::npos);
    EXPECT_NE(j.logs(id)[0].message.find("[truncated: 200000 bytes"), std::string::npos);
  }
  auto replay = run_cli({"replay", "last", "--journal", journal}, quiet());
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
}
