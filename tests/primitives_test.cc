// exec, fs, http, sleep, env, time against real local things: temp trees, real child processes
// (including ones that ignore TERM), a real HTTP server on 127.0.0.1.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

// Runs `body` as one step with params dir=<temp dir> (and url= when given); returns the run.
LuaRun step(const TempDir& d, const std::string& body, Mode mode = Mode::Live,
            std::map<std::string, std::string> params = {}) {
  params.emplace("dir", d.path());
  std::string code =
      "runbook { name = 'prim', version = '1.0.0', params = { dir = { type = 'path' }, url = { type = 'url' } } }\n"
      "step('s', function(p)\n" + body + "\nend)\n";
  TempDir run_dir;
  auto r = run_lua(run_dir.path(), code, mode, params);
  return r;
}

std::string err_of(const LuaRun& r) { return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0]; }

bool pid_alive(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST(Exec, CapturesOutputCodeAndUsesArgvNotAShell) {
  TempDir d;
  auto r = step(d, R"(
    local r = exec{ "sh", "-c", "printf '%s' \"$GREETING\"; echo err >&2; cat", env = { GREETING = "hi there" },
                    stdin = "fed", cwd = p.dir }
    assert(r.stdout == "hi therefed", r.stdout)
    assert(r.stderr == "err\n")
    assert(r.code == 0)
    -- argv: no shell expansion of arguments
    local e = exec{ "echo", "$HOME", "*" }
    assert(e.stdout == "$HOME *\n", e.stdout)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST(Exec, MissingProgramIsAClearError) {
  TempDir d;
  auto r = step(d, "exec{ 'no-such-program-xyz' }");
  EXPECT_NE(err_of(r).find("exec: 'no-such-program-xyz' not found on PATH"), std::string::npos) << err_of(r);
}

TEST(Exec, TimeoutStopsTheWholeGroupIncludingAChildThatIgnoresTerm) {
  TempDir d;
  auto t0 = std::chrono::steady_clock::now();
  // The shell starts a child that ignores TERM and records its pid, then waits.
  auto r = step(d, R"(
    exec{ "sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > " .. p.dir .. "/child.pid; while :; do sleep 0.1; done' & wait",
          timeout = "1s", grace = "300ms" }
  )");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(r).find("timed out after 1.0s; its process group was stopped"), std::string::npos) << err_of(r);
  EXPECT_LT(took, std::chrono::seconds(6));
  pid_t child = std::stoi(read_file(d / "child.pid"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(pid_alive(child)) << "the TERM-ignoring grandchild survived";
}

TEST(Exec, ReadonlyIsAProbeAndRunsInDryRun) {
  TempDir d;
  auto r = step(d, R"(
    local r = exec{ "sh", "-c", "echo probed > " .. p.dir .. "/probe.txt", readonly = true }
    local c = exec{ "sh", "-c", "echo changed > " .. p.dir .. "/change.txt" }
    assert(c.code == 0 and c.stdout == "")
  )", Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_TRUE(stdfs::exists(d / "probe.txt"));
  EXPECT_FALSE(stdfs::exists(d / "change.txt"));
}

TEST(Fs, BackupLatestRestoreRoundTripKeepsWhatItReplaces) {
  TempDir d;
  write_file(d / "app/config/a.ini", "good\n");
  write_file(d / "app/config/sub/b.ini", "good b\n");
  auto r = step(d, R"(
    local cfg = p.dir .. "/app/config"
    local b = fs.backup(cfg)
    assert(b:match("config%.bak%-%d+%-%d+$"), b)
    assert(fs.read(b .. "/sub/b.ini") == "good b\n")
    fs.write(cfg .. "/a.ini", "broken\n")
    local latest = fs.latest(p.dir .. "/app", "config.bak-*")
    assert(latest == b, tostring(latest))
    local res = fs.restore(latest, cfg)
    assert(fs.read(cfg .. "/a.ini") == "good\n")
    assert(res.previous and fs.read(res.previous .. "/a.ini") == "broken\n", json.encode(res))
    assert(fs.sha256(cfg .. "/a.ini") == fs.sha256(b .. "/a.ini"))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

// An env file's backup holds every secret in it: private = true keeps it out of the work tree
// (where `git add -A` would take it), inside the run's artifacts, readable by the owner only.
TEST(Fs, PrivateBackupGoesIntoTheArtifactsNeverBesideTheFile) {
  TempDir d;
  write_file(d / "app/.env", "STRIPE_SECRET_KEY=sk_live_x\n");
  ::chmod((d / "app/.env").c_str(), 0644);
  auto r = step(d, R"(
    local b = fs.backup{ path = p.dir .. "/app/.env", private = true }
    assert(b:sub(1, #p.dir + 1) ~= p.dir .. "/", b)
    assert(b:match("/backups/.*/app/%.env%.bak%-%d+%-%d+$"), b)
    assert(fs.read(b) == "STRIPE_SECRET_KEY=sk_live_x\n")
    local mode = exec{ "stat", "-c", "%a", b, readonly = true }.stdout
    assert(mode == "600\n", "mode " .. mode)
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  for (const auto& e : stdfs::directory_iterator(d / "app"))
    EXPECT_EQ(e.path().filename().string(), ".env") << "a backup landed in the work tree: " << e.path();
  // Asking for both places is a clear error, not a guess.
  auto both = step(d, "fs.backup{ path = p.dir .. '/app/.env', private = true, dir = p.dir }");
  EXPECT_NE(err_of(both).find("fs.backup: give dir or private = true, not both"), std::string::npos)
      << err_of(both);
  // A dry-run plans it where the live run would put it.
  auto dry = step(d, "local b = fs.backup{ path = p.dir .. '/app/.env', private = true }\n"
                     "assert(b:find('/backups/', 1, true), b)", Mode::DryRun);
  EXPECT_EQ(dry.result.exit_code, 0) << err_of(dry);
}

TEST(Fs, WriteIsAtomicAndKeepsThePreviousContent) {
  TempDir d;
  write_file(d / "f.txt", "v1");
  auto r = step(d, R"(
    local w = fs.write(p.dir .. "/f.txt", "v2")
    assert(fs.read(p.dir .. "/f.txt") == "v2")
    assert(fs.read(w.previous) == "v1")
    fs.write{ path = p.dir .. "/new/deeper.txt", content = "x" }
  )");
  // A write into a missing directory fails clearly rather than creating half a tree.
  EXPECT_NE(err_of(r).find("fs.write: cannot create a temp file beside"), std::string::npos) << err_of(r);
  EXPECT_EQ(read_file(d / "f.txt"), "v2");
}

TEST(Fs, RemoveMovesIntoArtifactsNeverDestroys) {
  TempDir d;
  write_file(d / "junk/file.txt", "precious");
  auto r = step(d, R"(
    local res = fs.remove(p.dir .. "/junk")
    assert(res.removed and not fs.exists(p.dir .. "/junk"))
    assert(fs.read(res.moved_to .. "/file.txt") == "precious", res.moved_to)
    local again = fs.remove(p.dir .. "/junk")
    assert(again.removed == false)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST(Fs, GlobMkdirCopyDiskFree) {
  TempDir d;
  write_file(d / "backups/pr-30-20260101-000000/x", "1");
  write_file(d / "backups/pr-30-20260102-000000/x", "2");
  write_file(d / "backups/other/x", "3");
  auto r = step(d, R"(
    local g = fs.glob(p.dir .. "/backups/pr-30-*")
    assert(#g == 2 and g[2]:match("20260102"), json.encode(g))
    fs.mkdir(p.dir .. "/a/b/c")
    fs.copy(p.dir .. "/backups/other", p.dir .. "/a/b/c/copy")
    assert(fs.read(p.dir .. "/a/b/c/copy/x") == "3")
    local df = fs.disk_free(p.dir)
    assert(df.total > 0 and df.avail > 0 and df.used_percent >= 0 and df.used_percent <= 100)
    assert(fs.stat(p.dir .. "/a").type == "directory")
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST(Fs, DryRunOfEveryChangeLeavesTheTreeByteForByteAndPlansUsableResults) {
  TempDir d;
  write_file(d / "app/config/a.ini", "a");
  write_file(d / "app/data.txt", "data");
  std::string before = sha256_tree(d.path());
  auto r = step(d, R"(
    local b = fs.backup(p.dir .. "/app/config")
    assert(type(b) == "string")
    fs.write(p.dir .. "/app/data.txt", "changed")
    fs.mkdir(p.dir .. "/newdir")
    fs.copy(p.dir .. "/app/data.txt", p.dir .. "/copy.txt")
    local rm = fs.remove(p.dir .. "/app/data.txt")
    assert(rm.removed == true)
    fs.restore(p.dir .. "/app/config", p.dir .. "/app/config2")
  )", Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sha256_tree(d.path()), before);
  ASSERT_GE(r.events.effects.size(), 6u);
  for (const auto& e : r.events.effects) EXPECT_EQ(e.status, "planned") << e.name;
  EXPECT_NE(r.events.effects[1].preview["text"].get<std::string>().find("1 lines differ"), std::string::npos);
}

TEST(Http, GetPostAndJson) {
  TempDir d;
  HttpServer s(d / "srv");
  auto r = step(d, R"(
    local g = http.get(p.url .. "/health")
    assert(g.status == 200 and g.json.status == "ok", g.body)
    local po = http.post{ url = p.url .. "/flags", json = { flag_name = "new_ui", enabled = false } }
    assert(po.json.received.flag_name == "new_ui" and po.json.received.enabled == false, po.body)
    assert(http.check{ url = p.url .. "/health" } == true)
  )", Mode::Live, {{"url", s.url("")}});
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(s.changing_requests(), 1);
}

TEST(Http, ErrorStatusFailsUnlessCheckFalseAndRetriesOn5xx) {
  TempDir d;
  HttpServer s(d / "srv");
  write_file(d / "srv/post_status", "503");
  auto r = step(d, R"(
    local ok, err = pcall(http.post, { url = p.url .. "/x", json = {}, retries = 2, retry_delay = "10ms" })
    assert(not ok and tostring(err):find("returned 503 after 3 tries"), tostring(err))
    local r = http.post{ url = p.url .. "/x", json = {}, check = false }
    assert(r.ok == false and r.status == 503)
  )", Mode::Live, {{"url", s.url("")}});
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(s.changing_requests(), 4);
}

TEST(Http, DeadServerFailsPromptlyNamingTheCall) {
  TempDir d;
  int port = free_port();
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(d, "http.get('http://127.0.0.1:" + std::to_string(port) + "/')");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(err_of(r).find("http.get: GET http://127.0.0.1:"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("connect"), std::string::npos) << err_of(r);
}

TEST(Http, WaitHealthyPollsUntilTheServerRecovers) {
  TempDir d;
  HttpServer s(d / "srv");
  s.set_status(503);
  std::thread fixer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    s.set_status(200);
  });
  auto r = step(d, R"(
    local w = http.wait_healthy{ url = p.url .. "/health", timeout = "10s", interval = "100ms" }
    assert(w.status == 200 and w.attempts > 1, json.encode(w))
  )", Mode::Live, {{"url", s.url("")}});
  fixer.join();
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST(Http, WaitHealthyGivesUpAtItsTimeoutWithTheLastStatus) {
  TempDir d;
  HttpServer s(d / "srv");
  s.set_status(500);
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(d, "http.wait_healthy{ url = p.url .. '/health', timeout = '1s' }", Mode::Live, {{"url", s.url("")}});
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(4));
  EXPECT_NE(err_of(r).find("not healthy after"), std::string::npos) << err_of(r);
  EXPECT_NE(err_of(r).find("last status 500"), std::string::npos) << err_of(r);
}

TEST(Basic, SleepEnvTimeAndWaitUntil) {
  TempDir d;
  auto r = step(d, R"(
    local t0 = time.now()
    sleep("200ms")
    assert(time.now() - t0 >= 0.19)
    assert(env.get("RUNBOOK_TEST_UNSET_VAR") == nil)
    assert(env.get("RUNBOOK_TEST_UNSET_VAR", "dflt") == "dflt")
    local n = 0
    local v = wait["until"](function() n = n + 1; return n >= 3 and "done" end, { timeout = "5s", interval = "50ms" })
    assert(v == "done" and n == 3)
    local ok, err = pcall(wait.poll, function() return false end, { timeout = "200ms", interval = "50ms", what = "never" })
    assert(not ok and tostring(err):find("never did not hold"), tostring(err))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}
