// Passwords inside ordinary parameters on resume (asked again, never acted on masked), replays
// of runs with secret parameters of every type, and a key=value DSN shown with only its
// password masked. The real binary, a real Redis with requirepass, a real PostgreSQL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include "support/pg_server.h"
#include "support/redis_server.h"
#include "support/support.h"

using namespace rb::test;

namespace {

std::string journal_text(const TempDir& d) {
  std::string s;
  for (const char* f : {"j.db", "j.db-wal"}) {
    struct stat sb {};
    if (::stat((d / f).c_str(), &sb) == 0) s += read_file(d / f);
  }
  return s;
}

void no_secret(const std::string& pw, std::initializer_list<const std::string*> texts) {
  for (const auto* s : texts) EXPECT_EQ(s->find(pw), std::string::npos) << *s;
}

}  // namespace

// An ordinary url parameter with a password: journaled masked, asked for again on resume.
TEST(SecretsResume, PasswordInAnOrdinaryUrlIsAskedAgain) {
  const std::string pw = "cache-pw-8812";
  TempDir d;
  RedisServer redis(pw);
  write_file(d / "rb.lua", R"(
runbook{ name = "cache", version = "1.0.0", params = { cache = { type = "url", required = true } } }
step("a", function(p) redis.set(p.cache, "k1", "v") end)
step("b", function(p) redis.set(p.cache, "k2", "v") end)
)");
  std::string url = redis.url(0, ":" + pw);
  write_file(d / "p.env", "cache=" + url + "\n");
  ::chmod((d / "p.env").c_str(), 0600);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}, {"RUNBOOK_CRASH_AT", "done:1"}};
  auto first = run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env);
  ASSERT_EQ(first.code, 128 + SIGKILL) << first.out << first.err;
  env.erase("RUNBOOK_CRASH_AT");
  EXPECT_EQ(journal_text(d).find(pw), std::string::npos);

  auto refused = run_cli({"resume", "last"}, env);
  EXPECT_EQ(refused.code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("'cache'"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--param-file"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("RUNBOOK_PARAM_CACHE"), std::string::npos) << refused.err;
  no_secret(pw, {&refused.out, &refused.err});
  RedisClient client(redis.port(), pw);
  EXPECT_EQ(client.exists("k2"), 0);

  // Another database is a change: refused without showing either password. (Another password
  // alone is not: its masked form is the recorded one.)
  auto changed = run_cli({"resume", "last", "-p", "cache=" + redis.url(1, ":other-pw-4471")}, env);
  EXPECT_EQ(changed.code, 2) << changed.out << changed.err;
  EXPECT_NE(changed.err.find("differ"), std::string::npos) << changed.err;
  no_secret(pw, {&changed.out, &changed.err});
  no_secret("other-pw-4471", {&changed.out, &changed.err});
  EXPECT_NE(changed.err.find("redis://:***@127.0.0.1:" + std::to_string(redis.port()) + "/1"),
            std::string::npos)
      << changed.err;

  // The masked form pasted back is refused, not acted on.
  auto pasted = run_cli({"resume", "last", "-p", "cache=" + redis.url(0, ":***")}, env);
  EXPECT_EQ(pasted.code, 2) << pasted.out << pasted.err;
  EXPECT_NE(pasted.err.find("masked password"), std::string::npos) << pasted.err;
  EXPECT_EQ(client.exists("k2"), 0);

  // Given again by the environment: the same masked form, so not a change.
  auto env2 = env;
  env2["RUNBOOK_PARAM_CACHE"] = url;
  auto ok = run_cli({"resume", "last"}, env2);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.err.find("differ"), std::string::npos) << ok.err;
  no_secret(pw, {&ok.out, &ok.err});
  EXPECT_EQ(client.exists("k2"), 1);

  // Once more, given by the file.
  client.run({"DEL", "k2"});
  env["RUNBOOK_CRASH_AT"] = "done:1";
  ASSERT_EQ(run_cli({"exec", d / "rb.lua", "--param-file", d / "p.env"}, env).code, 128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  ok = run_cli({"resume", "last", "--param-file", d / "p.env"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  no_secret(pw, {&ok.out, &ok.err});
  EXPECT_EQ(client.exists("k2"), 1);
  EXPECT_EQ(journal_text(d).find(pw), std::string::npos);
}

// A DSN string parameter with password=: the same, and shown with only password=*** (item 3).
TEST(SecretsResume, PasswordInADsnStringIsAskedAgainAndShownMasked) {
  const std::string pw = "dsn-pw-30511";
  TempDir d;
  write_file(d / "rb.lua", R"(
runbook{ name = "dsn", version = "1.0.0", params = {
  dsn = { required = true }, token = { secret = true, default = "x" } } }
step("a", function(p) log.info("dsn is " .. p.dsn) time.now() end)
step("b", function(p) time.now() end)
)");
  std::string dsn = "host=127.0.0.1 port=5999 dbname=x user=u password=" + pw;
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"}, {"RUNBOOK_CRASH_AT", "done:1"},
                                         {"RUNBOOK_PARAM_DSN", dsn}};
  auto first = run_cli({"exec", d / "rb.lua"}, env);
  ASSERT_EQ(first.code, 128 + SIGKILL) << first.out << first.err;
  EXPECT_NE(first.out.find("dsn is host=127.0.0.1 port=5999 dbname=x user=u password=***"),
            std::string::npos)
      << first.out;
  no_secret(pw, {&first.out, &first.err});
  env.erase("RUNBOOK_CRASH_AT");
  auto show = run_cli({"show", "last"}, env);
  EXPECT_NE(show.out.find("host=127.0.0.1 port=5999 dbname=x user=u password=***"), std::string::npos)
      << show.out;
  no_secret(pw, {&show.out, &show.err});

  auto env_no = env;
  env_no.erase("RUNBOOK_PARAM_DSN");
  auto refused = run_cli({"resume", "last"}, env_no);
  EXPECT_EQ(refused.code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("'dsn'"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("RUNBOOK_PARAM_DSN"), std::string::npos) << refused.err;
  no_secret(pw, {&refused.out, &refused.err});

  auto ok = run_cli({"resume", "last"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.err.find("differ"), std::string::npos) << ok.err;
  no_secret(pw, {&ok.out, &ok.err});
  EXPECT_EQ(journal_text(d).find(pw), std::string::npos);
}

// Replays of runs with secret parameters of every type, the secrets inside effect arguments
// (stdin, a Redis URL): answered from the journal without the secrets, no false divergence.
TEST(SecretsResume, ReplayWithSecretsOfEveryType) {
  const std::string redis_pw = "replay-redis-pw-771", token = "replay-token-55901",
                    dsn_pw = "replay-dsn-pw-2291";
  TempDir d;
  RedisServer redis(redis_pw);
  write_file(d / "secret.txt", "x");
  write_file(d / "rb.lua", R"(
runbook{ name = "rp", version = "1.0.0", params = {
  token = { secret = true, required = true },
  url = { type = "url", secret = true, required = true },
  where = { type = "path", secret = true, required = true },
  dsn = { secret = true, required = true },
  cache = { type = "url", required = true } } }
step("a", function(p)
  exec{ "cat", stdin = "token " .. p.token .. "\n" }
  redis.set(p.url, "k", "SELECT '" .. p.token .. "'")
  redis.set(p.cache, "k2", p.dsn)
  log.info("where " .. p.where .. " dsn " .. p.dsn)
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"},
                                         {"RUNBOOK_PARAM_TOKEN", token},
                                         {"RUNBOOK_PARAM_URL", redis.url(0, ":" + redis_pw)},
                                         {"RUNBOOK_PARAM_WHERE", d / "secret.txt"},
                                         {"RUNBOOK_PARAM_DSN", "host=127.0.0.1 user=u password=" + dsn_pw},
                                         {"RUNBOOK_PARAM_CACHE", redis.url(1, ":" + redis_pw)}};
  auto r = run_cli({"exec", d / "rb.lua"}, env);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const auto& s : {redis_pw, token, dsn_pw}) no_secret(s, {&r.out, &r.err});
  std::map<std::string, std::string> bare{{"RUNBOOK_JOURNAL", d / "j.db"}};
  auto replay = run_cli({"replay", "last"}, bare);
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(replay.out.find("departs"), std::string::npos) << replay.out;
  EXPECT_NE(replay.out.find("the replay matches"), std::string::npos) << replay.out;
  for (const auto& s : {redis_pw, token, dsn_pw}) no_secret(s, {&replay.out, &replay.err});
  // With the secrets in the environment too, the replay does not diverge either.
  replay = run_cli({"replay", "last"}, env);
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  for (const auto& s : {redis_pw, token, dsn_pw}) no_secret(s, {&replay.out, &replay.err});
}

// A secret embedded in SQL: the replay compares the redacted statement.
TEST(SecretsResume, ReplayOfSqlEmbeddingASecret) {
  ASSERT_EQ(PgServer::unavailable(), "") << "install PostgreSQL: scripts/install-deps.sh";
  PgServer pg;
  const std::string token = "sql-token-88231";
  TempDir d;
  write_file(d / "rb.lua", R"(
runbook{ name = "sq", version = "1.0.0", params = {
  dsn = { secret = true, required = true }, token = { secret = true, required = true } } }
step("a", function(p)
  local rows = pg.query{ dsn = p.dsn, sql = "SELECT '" .. p.token .. "' AS t" }
  log.info("rows " .. #rows)
end)
)");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "j.db"},
                                         {"RUNBOOK_PARAM_DSN", pg.dsn()},
                                         {"RUNBOOK_PARAM_TOKEN", token}};
  auto r = run_cli({"exec", d / "rb.lua"}, env);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  no_secret(token, {&r.out, &r.err});
  no_secret(PgServer::kPassword, {&r.out, &r.err});
  auto replay = run_cli({"replay", "last"}, {{"RUNBOOK_JOURNAL", d / "j.db"}});
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(replay.out.find("departs"), std::string::npos) << replay.out;
  no_secret(token, {&replay.out, &replay.err});
  no_secret(PgServer::kPassword, {&replay.out, &replay.err});
  EXPECT_EQ(journal_text(d).find(token), std::string::npos);
}
