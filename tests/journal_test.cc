// The journal on its own: schema versioning, default path, what a reader sees.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

TEST(Journal, DefaultPathFollowsXdgThenHome) {
  std::string old_j = getenv("RUNBOOK_JOURNAL") ? getenv("RUNBOOK_JOURNAL") : "";
  unsetenv("RUNBOOK_JOURNAL");
  setenv("XDG_STATE_HOME", "/x/state", 1);
  EXPECT_EQ(Journal::default_path(), "/x/state/runbook/journal.db");
  unsetenv("XDG_STATE_HOME");
  setenv("HOME", "/home/op", 1);
  EXPECT_EQ(Journal::default_path(), "/home/op/.local/state/runbook/journal.db");
  setenv("RUNBOOK_JOURNAL", "/tmp/j.db", 1);
  EXPECT_EQ(Journal::default_path(), "/tmp/j.db");
  if (old_j.empty()) unsetenv("RUNBOOK_JOURNAL"); else setenv("RUNBOOK_JOURNAL", old_j.c_str(), 1);
}

TEST(Journal, RefusesANewerSchemaWithAClearMessage) {
  TempDir d;
  { Journal j(d / "j.db"); }
  sqlite3* db = nullptr;
  sqlite3_open((d / "j.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    Journal j(d / "j.db");
    FAIL() << "opened a journal from the future";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99, newer than this runbook"), std::string::npos) << e.what();
  }
}

TEST(Journal, AnotherConnectionSeesARunWhileItIsGoing) {
  TempDir d;
  Journal writer(d / "j.db");
  RunRecord r;
  r.runbook = "live";
  r.version = "1.0.0";
  r.mode = "live";
  r.outcome = "running";
  r.started_ms = 1;
  writer.begin_run(r);
  EffectRecord e;
  e.run_id = r.id;
  e.seq = 1;
  e.name = "git.reset";
  e.kind = "change";
  e.state = "begun";
  writer.effect_begun(e, /*durable=*/true);
  // A second process (runbook runs / resume after a crash) sees the begun change at once.
  Journal reader(d / "j.db");
  auto effects = reader.effects(r.id);
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].state, "begun");
  EXPECT_EQ(reader.run(r.id)->outcome, "running");
}

namespace {

RunRecord a_run(const std::string& name = "live") {
  RunRecord r;
  r.runbook = name;
  r.version = "1.0.0";
  r.mode = "live";
  r.outcome = "running";
  r.started_ms = 1;
  return r;
}

EffectRecord an_effect(int64_t run, int64_t seq, const std::string& kind) {
  EffectRecord e;
  e.run_id = run;
  e.seq = seq;
  e.step_idx = 1;
  e.name = kind == "probe" ? "fs.read" : "fs.write";
  e.kind = kind;
  e.state = "begun";
  return e;
}

int64_t scalar(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

}  // namespace

// The lock-out of issue 8: a probe's row used to open a transaction that stayed open while the
// probe ran. Now another process can take the write lock at once, with no wait at all.
TEST(Journal, NoWriteTransactionStaysOpenBetweenCalls) {
  TempDir d;
  Journal writer(d / "j.db");
  RunRecord r = a_run();
  writer.begin_run(r);
  writer.step_begun(StepRecord{r.id, 1, 1, "s", 1, 0, "running", ""});
  writer.effect_begun(an_effect(r.id, 1, "probe"), false);  // a probe about to run for minutes
  writer.log(LogRecord{r.id, 1, 1, "info", "waiting", 2});
  sqlite3* other = nullptr;
  sqlite3_open((d / "j.db").c_str(), &other);
  sqlite3_busy_timeout(other, 0);
  EXPECT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(other);
  sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

// Another process holding the write lock longer than the busy timeout: the write is retried
// until it gets through, it does not fail with "database is locked".
TEST(Journal, AWriteWaitsOutAnotherProcessesTransaction) {
  TempDir d;
  { Journal init(d / "j.db"); }
  sqlite3* other = nullptr;
  sqlite3_open((d / "j.db").c_str(), &other);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  Journal j(d / "j.db");
  RunRecord r = a_run();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NO_THROW(j.begin_run(r));
  auto waited = std::chrono::steady_clock::now() - t0;
  release.join();
  sqlite3_close(other);
  EXPECT_GE(waited, std::chrono::milliseconds(3000));
  EXPECT_GT(r.id, 0);
  EXPECT_EQ(j.run(r.id)->outcome, "running");
}

TEST(Journal, LargeValuesAreStoredOnceAndReadBackWhole) {
  TempDir d;
  Journal j(d / "j.db");
  RunRecord r = a_run();
  j.begin_run(r);
  std::string big(300 * 1024, 'x');
  big += "end";
  json many = json::array();  // no large string, but large as a whole
  for (int i = 0; i < 20000; ++i) many.push_back("item " + std::to_string(i));
  for (int seq = 1; seq <= 3; ++seq) {
    EffectRecord e = an_effect(r.id, seq, "change");
    e.args = {{"path", "/x"}, {"content", big}};
    j.effect_begun(e, true);
    e.state = "done";
    e.result = {{"content", big}, {"nested", {{"again", json::array({1, big})}}}, {"many", many}};
    j.effect_ended(e);
  }
  j.flush();
  // One copy of the string and one of the list, whatever the number of places they appear in.
  EXPECT_EQ(scalar(d / "j.db", "SELECT count(*) FROM blobs"), 2);
  EXPECT_LT(scalar(d / "j.db", "SELECT max(length(args) + length(result)) FROM effects"), 2000);
  auto es = j.effects(r.id);
  ASSERT_EQ(es.size(), 3u);
  for (const auto& e : es) {
    EXPECT_EQ(e.args["content"], big);
    EXPECT_EQ(e.result["content"], big);
    EXPECT_EQ(e.result["nested"]["again"][1], big);
    EXPECT_EQ(e.result["many"], many);
  }
  // A plain string result, large.
  EffectRecord e = an_effect(r.id, 4, "probe");
  j.effect_begun(e, false);
  e.state = "done";
  e.result = big;
  j.effect_ended(e);
  EXPECT_EQ(j.effects(r.id).back().result, big);
}

TEST(Journal, LongLogLinesAndValuesOverTheCapAreCutWithAMarker) {
  TempDir d;
  Journal j(d / "j.db");
  RunRecord r = a_run();
  j.begin_run(r);
  std::string line(1 << 20, 'l');
  j.log(LogRecord{r.id, 0, 1, "info", line, 3});
  auto logs = j.logs(r.id);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_LT(logs[0].message.size(), Journal::kBlobMin + 200);
  EXPECT_NE(logs[0].message.find("… [truncated: 1048576 bytes, sha256 "), std::string::npos);
  std::string huge(Journal::kValueCap + 1, 'h');
  EffectRecord e = an_effect(r.id, 1, "probe");
  j.effect_begun(e, false);
  e.state = "done";
  e.result = {{"body", huge}};
  j.effect_ended(e);
  auto body = j.effects(r.id)[0].result["body"].get<std::string>();
  EXPECT_LT(body.size(), Journal::kBlobMin + 200);
  EXPECT_NE(body.find("[truncated: " + std::to_string(huge.size()) + " bytes, sha256 "),
            std::string::npos);
}

// The journal's file removed under a running run: writes would go to a file no one can read.
TEST(Journal, ADeletedJournalIsAFailureNamedAsSuch) {
  TempDir d;
  Journal j(d / "j.db");
  RunRecord r = a_run();
  j.begin_run(r);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((d / ("j.db" + std::string(suffix))).c_str());
  j.log(LogRecord{r.id, 0, 1, "info", "after", 3});
  j.flush();  // never throws for storage
  EXPECT_NE(j.failure().find("was deleted while the run was going"), std::string::npos) << j.failure();
  try {
    j.effect_begun(an_effect(r.id, 1, "change"), true);
    FAIL() << "a durable write to a deleted journal succeeded";
  } catch (const JournalError& e) {
    EXPECT_NE(std::string(e.what()).find("j.db was deleted"), std::string::npos) << e.what();
  }
  EXPECT_THROW(j.check(), JournalError);
}

TEST(Journal, AnUnwritableDirectoryIsNamed) {
  try {
    Journal j("/proc/runbook-no/such/j.db");
    FAIL() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open journal /proc/runbook-no/such/j.db"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot create directory /proc/runbook-no/such"), std::string::npos) << e.what();
  }
}
