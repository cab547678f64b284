// The journal on its own: schema versioning, default path, what a reader sees.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

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
