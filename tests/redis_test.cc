// redis.* against a real redis-server on 127.0.0.1 (a free port, no persistence, a temp dir):
// ping up and down, get/set/del, SCAN-based deletes over 10,000 keys, guarded flushes, dry-runs
// that leave the keyspace as it was, and a password that never reaches the journal or --json.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>

#include "os/process.h"
#include "support/redis_server.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

using Client = RedisClient;

LuaRun step(const std::string& url, const std::string& body, Mode mode = Mode::Live) {
  std::string code =
      "runbook { name = 'redis', version = '1.0.0', params = { url = { type = 'url' } } }\n"
      "step('s', function(p)\n" + body + "\nend)\n";
  TempDir run_dir;
  return run_lua(run_dir.path(), code, mode, {{"url", url}});
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

// A port that accepts connections (the kernel's backlog) but never answers: a hung server.
struct Silent {
  int fd = -1, port = 0;
  Silent() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Silent() { ::close(fd); }
};

}  // namespace

TEST(Redis, PingIsTrueForALiveServerAndPromptlyFalseForADeadOrHungOne) {
  RedisServer server;
  int dead = free_port();
  Silent hung;
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(server.url(), R"(
    assert(redis.ping{ url = p.url } == true)
    assert(redis.ping{ url = "redis://127.0.0.1:)" + std::to_string(dead) + R"(/0" } == false)
    assert(redis.ping{ url = "redis://127.0.0.1:)" + std::to_string(hung.port) + R"(/0", timeout = "1s" } == false)
  )");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_TRUE(r.events.logged("Connection refused"));

  // Anything but ping fails, promptly and clearly.
  t0 = std::chrono::steady_clock::now();
  auto g = step("redis://127.0.0.1:" + std::to_string(dead) + "/0", "redis.get{ url = p.url, key = 'k' }");
  EXPECT_NE(err_of(g).find("redis.get: cannot connect to 127.0.0.1:" + std::to_string(dead)), std::string::npos)
      << err_of(g);
  auto h = step("redis://127.0.0.1:" + std::to_string(hung.port) + "/0", "redis.get{ url = p.url, key = 'k', timeout = '1s' }");
  EXPECT_NE(err_of(h).find("redis.get: "), std::string::npos) << err_of(h);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));

  auto bad = step("http://127.0.0.1:1/", "redis.ping{ url = p.url }");
  EXPECT_NE(err_of(bad).find("bad argument 'url' to 'redis.ping'"), std::string::npos) << err_of(bad);
}

TEST(Redis, GetSetDelAndInfo) {
  RedisServer server;
  Client cli(server.port());
  auto r = step(server.url(3), R"(
    assert(redis.get{ url = p.url, key = "flag" } == nil)
    local s = redis.set{ url = p.url, key = "flag", value = "on" }
    assert(s.previous == nil and s.previous_type == "none", json.encode(s))
    s = redis.set{ url = p.url, key = "flag", value = "off", ttl = "1m" }
    assert(s.previous == "on", json.encode(s))
    assert(redis.get{ url = p.url, key = "flag" } == "off")
    redis.set{ url = p.url, key = "n", value = 42 }
    assert(redis.get{ url = p.url, key = "n" } == "42")
    assert(redis.del{ url = p.url, key = "n" }.deleted == 1)
    assert(redis.del{ url = p.url, key = "n" }.deleted == 0)
    local info = redis.info{ url = p.url, section = "keyspace" }
    assert(info.db3.keys == 1 and info.db3.expires == 1, json.encode(info))
    local server = redis.info{ url = p.url, section = "server" }
    assert(type(server.redis_version) == "string" and math.type(server.tcp_port) == "integer", json.encode(server))
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  cli.run({"SELECT", "3"});
  EXPECT_EQ(cli.get("flag"), "off");
  long long ttl = cli.run({"PTTL", "flag"})->integer;
  EXPECT_GT(ttl, 50000);
  EXPECT_LE(ttl, 60000);
  cli.run({"HSET", "h", "f", "v"});
  auto w = step(server.url(3), "redis.get{ url = p.url, key = 'h' }");
  EXPECT_NE(err_of(w).find("redis.get: "), std::string::npos);
  EXPECT_NE(err_of(w).find("WRONGTYPE"), std::string::npos) << err_of(w);
}

TEST(Redis, DeleteMatchingOverTenThousandKeysRemovesExactlyTheMatchingOnes) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("gemini:", 6000);
  cli.fill("other:", 3990);
  cli.fill("xgemini:", 5);  // close to the pattern but not matching
  cli.fill("gemini", 5);    // no colon: does not match "gemini:*"
  ASSERT_EQ(cli.dbsize(), 10000);
  auto before = cli.dump();

  // The dry-run counts what it would delete, and deletes nothing.
  auto dry = step(server.url(), R"(
    local r = redis.delete_matching{ url = p.url, pattern = "gemini:*" }
    assert(r.deleted == 6000, json.encode(r))
  )", Mode::DryRun);
  ASSERT_EQ(dry.result.exit_code, 0) << err_of(dry);
  ASSERT_EQ(dry.events.effects.size(), 1u);
  EXPECT_NE(dry.events.effects[0].preview.dump().find("deletes 6000 of 10000 keys"), std::string::npos)
      << dry.events.effects[0].preview.dump();
  EXPECT_EQ(cli.dump(), before);

  auto r = step(server.url(), R"(
    local r = redis.delete_matching{ url = p.url, pattern = "gemini:*", batch = 500 }
    assert(r.deleted == 6000, json.encode(r))
    assert(redis.delete_matching{ url = p.url, pattern = "gemini:*" }.deleted == 0)
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  auto after = cli.dump();
  EXPECT_EQ(after.size(), 4000u);
  for (const auto& [k, v] : before)
    if (k.rfind("gemini:", 0) == 0) EXPECT_EQ(after.count(k), 0u) << k;
    else EXPECT_EQ(after.at(k), v) << k;
}

TEST(Redis, FlushNeedsConfirmOrYesAndReportsTheKeysBefore) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("a:", 12);
  cli.run({"SELECT", "1"});
  cli.fill("b:", 3);

  auto refused = step(server.url(0), "redis.flush{ url = p.url }");
  EXPECT_NE(err_of(refused).find("redis.flush: refused: FLUSHDB on 127.0.0.1:" + std::to_string(server.port()) +
                                 "/0: removes 12 keys; pass confirm = true (or run with --yes)"),
            std::string::npos)
      << err_of(refused);
  // The dry-run fails the same way, before anything is done for real.
  auto dry = step(server.url(0), "redis.flush{ url = p.url }", Mode::DryRun);
  EXPECT_NE(err_of(dry).find("refused"), std::string::npos) << err_of(dry);
  cli.run({"SELECT", "0"});
  EXPECT_EQ(cli.dbsize(), 12);

  auto ok = step(server.url(0), R"(
    local r = redis.flush{ url = p.url, confirm = true }
    assert(r.scope == "db" and r.db == 0 and r.keys_before == 12, json.encode(r))
  )");
  ASSERT_EQ(ok.result.exit_code, 0) << err_of(ok);
  EXPECT_EQ(cli.dbsize(), 0);
  cli.run({"SELECT", "1"});
  EXPECT_EQ(cli.dbsize(), 3) << "another database was flushed";

  // FLUSHALL with the run's --yes, through the binary.
  cli.run({"SELECT", "0"});
  cli.fill("c:", 4);
  TempDir d;
  write_file(d / "rb.lua", "runbook { name = 'flush', version = '1.0.0', params = { url = { type = 'url' } } }\n"
                           "step('flush all', function(p)\n"
                           "  local r = redis.flush{ url = p.url, all = true }\n"
                           "  assert(r.keys_before == 7 and r.keyspace.db0 == 4 and r.keyspace.db1 == 3, json.encode(r))\n"
                           "end)\n");
  auto no = run_cli({"exec", d / "rb.lua", "--journal", d / "j.db", "-p", "url=" + server.url()});
  EXPECT_NE(no.code, 0);
  EXPECT_NE((no.out + no.err).find("refused"), std::string::npos) << no.out << no.err;
  EXPECT_EQ(cli.dbsize(), 4);
  auto yes = run_cli({"exec", d / "rb.lua", "--yes", "--journal", d / "j.db", "-p", "url=" + server.url()});
  EXPECT_EQ(yes.code, 0) << yes.out << yes.err;
  EXPECT_EQ(cli.dbsize(), 0);
  cli.run({"SELECT", "1"});
  EXPECT_EQ(cli.dbsize(), 0);
}

TEST(Redis, DryRunLeavesTheKeyspaceIdenticalAndPlansFromTheServer) {
  RedisServer server;
  Client cli(server.port());
  cli.fill("cache:", 200);
  cli.fill("keep:", 20);
  cli.run({"SET", "flag", "on", "EX", "3600"});
  auto before = cli.dump();
  auto size = cli.dbsize();
  auto r = step(server.url(), R"(
    local s = redis.set{ url = p.url, key = "flag", value = "off" }
    assert(s.previous == "on", json.encode(s))  -- read from the server by the preview
    assert(redis.get{ url = p.url, key = "flag" } == "off")  -- predicted from the planned set
    assert(redis.del{ url = p.url, key = "keep:1" }.deleted == 1)
    assert(redis.delete_matching{ url = p.url, pattern = "cache:*" }.deleted == 200)
    local f = redis.flush{ url = p.url, confirm = true }
    assert(f.keys_before == 221, json.encode(f))
    redis.flush{ url = p.url, all = true, confirm = true }
  )", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(cli.dbsize(), size);
  EXPECT_EQ(cli.dump(), before);
  std::string previews;
  for (const auto& e : r.events.effects) previews += e.preview.dump() + "\n";
  EXPECT_NE(previews.find(R"(flag: \"on\" → \"off\")"), std::string::npos) << previews;
  EXPECT_NE(previews.find("removes 221 keys"), std::string::npos) << previews;
}

TEST(Redis, ThePasswordNeverReachesTheJournalOrTheJsonOutput) {
  const std::string password = "Sup3r-s3cret-pw";
  RedisServer server(password);
  Client cli(server.port(), password);
  cli.fill("gemini:", 30);
  TempDir d;
  // The URL with its password is written in the runbook itself: only the effect knows it is one.
  std::string url = server.url(0, ":" + password);
  std::string acl = server.url(0, "default:" + password);
  write_file(d / "rb.lua",
             "runbook { name = 'cache', version = '1.0.0' }\n"
             "local url = '" + url + "'\n"
             "step('invalidate', function()\n"
             "  assert(redis.ping{ url = url })\n"
             "  assert(redis.ping{ url = '" + acl + "' })\n"
             "  assert(redis.ping{ url = '" + server.url() + "', password = '" + password + "' })\n"
             "  redis.set{ url = url, key = 'maintenance', value = 'on' }\n"
             "  log.info('deleted ' .. redis.delete_matching{ url = url, pattern = 'gemini:*' }.deleted)\n"
             "  assert(redis.ping{ url = '" + server.url(0, ":wrong-pw") + "' } == false)\n"
             "  redis.get{ url = '" + server.url(99, ":" + password) + "', key = 'x' }\n"
             "end)\n");
  auto r = run_cli({"exec", d / "rb.lua", "--json", "--journal", d / "journal.db"});
  // The last call fails (there is no db 99), so that an error message is checked too.
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("SELECT failed"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("deleted 30"), std::string::npos) << r.out;
  EXPECT_EQ(cli.get("maintenance"), "on");
  EXPECT_EQ(cli.dbsize(), 1);
  EXPECT_EQ(r.out.find(password), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find(password), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("redis://:***@127.0.0.1"), std::string::npos) << r.out;

  auto show = run_cli({"show", "last", "--json", "--journal", d / "journal.db"});
  EXPECT_EQ(show.out.find(password), std::string::npos);
  EXPECT_EQ(files_containing(d.path(), password, "/rb.lua"), std::vector<std::string>{});
  EXPECT_TRUE(stdfs::exists(d / "journal.db"));
}

TEST(Redis, TheStepDeadlineBoundsAHungServer) {
  Silent hung;
  std::string code =
      "runbook { name = 'redis', version = '1.0.0' }\n"
      "step{ 'read', timeout = '1s', run = function()\n"
      "  redis.get{ url = 'redis://127.0.0.1:" + std::to_string(hung.port) + "/0', key = 'k' }  -- its own timeout is 5s\n"
      "end }\n";
  TempDir run_dir;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_lua(run_dir.path(), code);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  EXPECT_NE(r.result.exit_code, 0);
  // The call may end on its own bound (the step's deadline) a moment before the step's timer
  // does: either clear message is right.
  std::string err = err_of(r);
  bool by_step = err.find("step 'read' exceeded its timeout of 1.0s (in redis.get)") != std::string::npos;
  bool by_call = err.find("redis.get: redis 127.0.0.1:" + std::to_string(hung.port) +
                          "/0: GET failed: no whole answer within") != std::string::npos &&
                 err.find("(the step's deadline)") != std::string::npos;
  EXPECT_TRUE(by_step || by_call)
      << err;
}

// 002 §4.3 live: node-api-rollback mode=cache against a real Redis and a local API. The pattern
// invalidation removes exactly the matching keys by SCAN (never KEYS | xargs DEL) and asks the
// API to warm the cache; the gradual invalidation goes entity by entity through the API and
// leaves Redis alone; a flush is refused without --yes.
TEST(Redis, NodeApiCacheRollbackLive) {
  RedisServer server;
  TempDir work;
  std::string repo = work / "repo";
  stdfs::create_directories(repo);
  auto git = [&](const std::vector<std::string>& args) {
    os::ProcessSpec s;
    s.argv = {"git", "-c", "user.name=t", "-c", "user.email=t@e"};
    s.argv.insert(s.argv.end(), args.begin(), args.end());
    s.cwd = repo;
    s.timeout = std::chrono::seconds(30);
    ASSERT_EQ(os::run_process(s).code, 0);
  };
  write_file(repo + "/index.js", "1\n");
  git({"init", "-q", "-b", "main"});
  git({"add", "-A"});
  git({"commit", "-qm", "v1"});
  HttpServer api(work / "http");
  Client c(server.port());
  c.fill("gemini:", 300);
  c.fill("session:", 40);
  auto rollback = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/node-api-rollback.lua",
                                  "-p", "mode=cache", "-p", "repo=" + repo, "-p", "base_url=" + api.url(""),
                                  "-p", "healthy_within=5s", "--journal", work / "j.db"};
    a.insert(a.end(), extra.begin(), extra.end());
    std::map<std::string, std::string> env{{"RUNBOOK_PARAM_REDIS_URL", server.url()}, {"HOME", work.path()},
                                           {"XDG_STATE_HOME", work / "xdg"}};
    return run_cli(a, env, 120);
  };
  auto pattern = rollback({});
  ASSERT_EQ(pattern.code, 0) << pattern.out << pattern.err;
  record_run_time("002 node-api-rollback mode=cache (SCAN delete, warm)", pattern);
  EXPECT_EQ(c.integer({"DBSIZE"}), 40) << "exactly the 300 gemini:* keys go";
  EXPECT_EQ(c.integer({"EXISTS", "session:7"}), 1);
  std::string req = read_file(work / "http/requests.log");
  EXPECT_NE(req.find("/api/cache/warm"), std::string::npos) << req;
  EXPECT_NE(pattern.out.find("300 keys matching gemini:* deleted"), std::string::npos) << pattern.out;

  // 6.4's cache hit rate > 70 %, from the server's own counters: 19 hits and 1 miss pass; a
  // cache that misses most lookups fails the rollback's verification, with the number.
  for (int i = 0; i < 19; ++i) c.integer({"GET", "session:1"});
  c.integer({"GET", "no-such-key"});
  auto hits = rollback({});
  ASSERT_EQ(hits.code, 0) << hits.out << hits.err;
  EXPECT_NE(hits.out.find("cache hit rate: 95"), std::string::npos) << hits.out;
  for (int i = 0; i < 100; ++i) c.integer({"GET", "no-such-key"});
  auto misses = rollback({});
  EXPECT_EQ(misses.code, 1) << misses.out;
  EXPECT_NE((misses.out + misses.err).find("(target > 70 %)"), std::string::npos) << misses.out << misses.err;
  EXPECT_NE((misses.out + misses.err).find("cache hit rate 1"), std::string::npos) << misses.out << misses.err;
  c.integer({"CONFIG", "RESETSTAT"});  // the counters are the server's: back to no lookups

  auto gradual = rollback({"-p", "invalidate=project:12,analysis:7"});
  ASSERT_EQ(gradual.code, 0) << gradual.out << gradual.err;
  req = read_file(work / "http/requests.log");
  size_t p12 = req.find("\"DELETE\", \"path\": \"/api/cache/project/12\""),
         a7 = req.find("\"DELETE\", \"path\": \"/api/cache/analysis/7\"");
  ASSERT_NE(p12, std::string::npos) << req;
  ASSERT_NE(a7, std::string::npos) << req;
  EXPECT_LT(p12, a7) << "one entity at a time, in the order given";
  EXPECT_EQ(c.integer({"DBSIZE"}), 40) << "gradual invalidation goes through the API, not Redis";

  auto bad = rollback({"-p", "invalidate=project 12"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE((bad.out + bad.err).find("invalidate: 'project 12' is not kind:id"), std::string::npos) << bad.out << bad.err;

  // The nuclear option asks; without a terminal or --yes it is refused and nothing is flushed.
  auto flush = rollback({"-p", "cache_pattern="});
  EXPECT_NE(flush.code, 0);
  EXPECT_EQ(c.integer({"DBSIZE"}), 40);
  auto yes = rollback({"-p", "cache_pattern=", "--yes"});
  ASSERT_EQ(yes.code, 0) << yes.out << yes.err;
  EXPECT_EQ(c.integer({"DBSIZE"}), 0);
}
