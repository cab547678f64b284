// Dry-run predictions of the git module (issue 9): after a planned checkout, reset, revert,
// cherry-pick, commit, tag, branch, stash or clean, git.head / status / rev_parse / log /
// diff_names answer from what the change will make true; a change the live run would refuse
// fails the dry-run there; previews carry the basis a saved plan is checked against. Each
// rehearsal is then run live on the same repository: the predictions must match the world.
// Fixtures are built with the `git` CLI (tests only: the engine never spawns git).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "core/unknown.h"
#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

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

std::string git(const std::string& repo, const std::string& args) {
  return sh("git -C '" + repo + "' " + args);
}

// dir/work on main: v1.0.0 (app.py "v1", config.ini, legacy.txt), v2.0.0 (app.py "v2", new.py,
// no legacy.txt), v2.0.1 = HEAD (app.py "v3 bad"); branch hotfix off v2.0.1 adds hotfix.txt.
struct Fixture {
  TempDir dir;
  std::string work = dir / "work";

  Fixture() {
    sh("git init -q -b main '" + work + "'");
    git(work, "config user.name Tester");
    git(work, "config user.email tester@example.com");
    write_file(work + "/app.py", "v1\n");
    write_file(work + "/config.ini", "a=1\n");
    write_file(work + "/legacy.txt", "old\n");
    write_file(work + "/.gitignore", "*.log\n");
    commit("release 1");
    git(work, "tag -a v1.0.0 -m 'v1.0.0'");
    write_file(work + "/app.py", "v2\n");
    write_file(work + "/new.py", "print('new')\n");
    git(work, "rm -q legacy.txt");
    commit("release 2");
    git(work, "tag v2.0.0");
    write_file(work + "/app.py", "v3 bad\n");
    commit("release 2.0.1: the bad one");
    git(work, "tag v2.0.1");
    git(work, "checkout -q -b hotfix");
    write_file(work + "/hotfix.txt", "fix\n");
    commit("hotfix");
    git(work, "checkout -q main");
  }
  void commit(const std::string& msg) {
    git(work, "add -A");
    git(work, "commit -q -m '" + msg + "'");
  }
  std::string sha(const std::string& rev) const {
    return git(work, "rev-parse '" + rev + "^{commit}'");
  }
  // HEAD, the refs, the index and every work-tree file: what a dry-run must leave as it was.
  std::string state() const {
    return git(work, "rev-parse HEAD") + "\n" + git(work, "symbolic-ref -q HEAD || true") + "\n" +
           git(work, "for-each-ref") + "\n" + git(work, "ls-files -s") + "\n" +
           git(work, "--no-optional-locks status --porcelain --untracked-files=all --ignored") + "\n" +
           sha256_tree(work);
  }
};

// Two steps: `act` (the changes) and `verify` (what a runbook checks after them). W is the work
// tree, V(rev) the sha of a revision as the fixture knows it before anything runs.
LuaRun run(const Fixture& f, const std::string& run_dir, const std::string& act,
           const std::string& verify, Mode mode) {
  std::string code =
      "runbook { name = 'predict-git', version = '1.0.0', params = { w = { type = 'path' }, "
      "v1 = { type = 'string' }, v2 = { type = 'string' }, v201 = { type = 'string' }, "
      "hotfix = { type = 'string' } } }\n"
      "local W\n"
      "step('act', function(p)\nW = p.w\n" +
      act + "\nend)\nstep('verify', function(p)\nW = p.w\n" + verify + "\nend)\n";
  return run_lua(run_dir, code, mode,
                 {{"w", f.work},
                  {"v1", f.sha("v1.0.0")},
                  {"v2", f.sha("v2.0.0")},
                  {"v201", f.sha("v2.0.1")},
                  {"hotfix", f.sha("hotfix")}});
}

std::string err_of(const LuaRun& r) {
  std::string s = r.result.error;
  for (const auto& e : r.events.step_errors) s += "\n" + e;
  return s;
}

std::vector<EffectRecord> journal_effects(const std::string& run_dir, int64_t run_id) {
  Journal j(run_dir + "/journal.db");
  return j.effects(run_id);
}

// The rehearsal passes with every git probe of the verify step predicted (in the output and the
// journal), changes nothing, and the same runbook then passes live.
void expect_predicted_then_live(const std::string& act, const std::string& verify,
                                const std::function<void(Fixture&)>& prepare = {}) {
  Fixture f;
  if (prepare) prepare(f);
  std::string before = f.state();
  TempDir dry;
  auto r = run(f, dry.path(), act, verify, Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(f.state(), before) << "the dry-run changed the repository";
  int predicted = 0;
  bool verifying = false;
  for (const auto& e : r.events.effects) {
    if (e.kind == Kind::Change) verifying = true;  // the probes after the first change
    if (verifying && e.kind == Kind::Probe && e.name.rfind("git.", 0) == 0) {
      EXPECT_EQ(e.status, "predicted") << e.name << " " << e.describe;
      ++predicted;
    }
  }
  EXPECT_GT(predicted, 0);
  int journaled = 0;
  verifying = false;
  for (const auto& e : journal_effects(dry.path(), r.result.run_id)) {
    if (e.kind == "change") {
      verifying = true;
      EXPECT_EQ(e.state, "planned") << e.name;
    } else if (verifying && e.name.rfind("git.", 0) == 0) {
      EXPECT_EQ(e.state, "predicted") << e.name;
      ++journaled;
    }
  }
  EXPECT_EQ(journaled, predicted);

  TempDir live;
  auto l = run(f, live.path(), act, verify, Mode::Live);
  EXPECT_EQ(l.result.exit_code, 0) << "the predictions do not match the world: " << err_of(l);
}

// A verification that contradicts the prediction fails the rehearsal (exit 1).
void expect_wrong_fails(const std::string& act, const std::string& wrong, const std::string& needle,
                        const std::function<void(Fixture&)>& prepare = {}) {
  Fixture f;
  if (prepare) prepare(f);
  TempDir dry;
  auto r = run(f, dry.path(), act, wrong, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 1) << "a wrong verification passed the rehearsal";
  EXPECT_NE(err_of(r).find(needle), std::string::npos) << err_of(r);
}

const char* kCheckout = R"(git.checkout{ repo = W, ref = "v2.0.0" })";

}  // namespace

TEST(PredictGit, CheckoutPredictsHeadTagStatusLogAndRevParse) {
  expect_predicted_then_live(kCheckout, R"(
    local h = git.head(W)
    assert(h.commit == p.v2, "head " .. tostring(h.commit))
    assert(h.short == p.v2:sub(1, 7))
    assert(h.detached == true and h.branch == nil and h.ref == nil)
    assert(h.tag == "v2.0.0" and #h.tags == 1 and h.summary == "release 2", json.encode(h))
    local s = git.status(W)
    assert(s.clean and s.tracked_clean and #s.modified == 0 and #s.untracked == 0, json.encode(s))
    assert(git.rev_parse(W, "HEAD") == p.v2)
    assert(git.rev_parse(W, "HEAD~1") == p.v1)
    assert(git.rev_parse(W, "main") == p.v201, "the branch stays where it was")
    local log = git.log{ repo = W, max = 2 }
    assert(#log == 2 and log[1].commit == p.v2 and log[2].summary == "release 1", json.encode(log))
    assert(#git.diff_names{ repo = W, from = "v2.0.0" } == 0)
    local d = git.diff_names{ repo = W, from = "v2.0.1", worktree = true }
    assert(#d == 1 and d[1] == "app.py", json.encode(d))
  )");
  expect_wrong_fails(kCheckout, R"(assert(git.head(W).tag == "v2.0.1", "still on the bad tag"))",
                     "still on the bad tag");
  expect_wrong_fails(kCheckout, R"(assert(git.head(W).commit == p.v201, "HEAD did not move"))",
                     "HEAD did not move");
}

TEST(PredictGit, CheckoutOfABranchAndStashedChanges) {
  auto dirty = [](Fixture& f) { write_file(f.work + "/config.ini", "a=hand-tuned\n"); };
  const char* act = R"(
    git.checkout{ repo = W, ref = "v1.0.0", stash = true }
    git.checkout{ repo = W, ref = "hotfix" }
  )";
  expect_predicted_then_live(act, R"(
    local h = git.head(W)
    assert(h.commit == p.hotfix and h.branch == "hotfix" and h.ref == "refs/heads/hotfix", json.encode(h))
    assert(h.detached == false and h.tag == nil)
    assert(git.status(W).clean)
    assert(git.rev_parse(W, "HEAD^") == p.v201)
  )",
                             dirty);
  expect_wrong_fails(act, R"(assert(git.head(W).branch == "main", "not on main"))", "not on main",
                     dirty);
  expect_wrong_fails(act, R"(assert(#git.status(W).modified == 1, "config.ini kept"))",
                     "config.ini kept", dirty);
}

TEST(PredictGit, HardResetMovesTheBranchAndCleansTheTree) {
  auto prepare = [](Fixture& f) {
    write_file(f.work + "/config.ini", "a=hand-tuned\n");
    write_file(f.work + "/legacy.txt", "in the way\n");
    write_file(f.work + "/notes.txt", "keep me\n");
  };
  const char* act = R"(git.reset{ repo = W, ref = "v1.0.0", hard = true })";
  expect_predicted_then_live(act, R"(
    local h = git.head(W)
    assert(h.commit == p.v1 and h.branch == "main" and h.tag == "v1.0.0", json.encode(h))
    assert(git.rev_parse(W, "main") == p.v1)
    local s = git.status(W)
    assert(s.tracked_clean and #s.untracked == 1 and s.untracked[1] == "notes.txt", json.encode(s))
    assert(not s.clean)
    local log = git.log{ repo = W }
    assert(#log == 1 and log[1].summary == "release 1", json.encode(log))
    local d = git.diff_names{ repo = W, from = "v2.0.1", to = "main" }
    assert(#d == 3, json.encode(d))
  )",
                             prepare);
  expect_wrong_fails(act, R"(assert(git.rev_parse(W, "main") == p.v201, "main stays"))",
                     "main stays", prepare);
}

TEST(PredictGit, RevertPredictsWhatItCanAndLeavesTheCommitIdUnknown) {
  const char* act = R"(git.revert{ repo = W, commit = "v2.0.1" })";
  expect_predicted_then_live(act, R"(
    local log = git.log{ repo = W, max = 3 }
    assert(#log == 3, json.encode(log))
    assert(log[1].summary == 'Revert "release 2.0.1: the bad one"', log[1].summary)
    assert(log[1].author == "Tester", tostring(log[1].author))
    assert(log[2].commit == p.v201 and log[3].commit == p.v2)
    assert(git.rev_parse(W, "HEAD~1") == p.v201)
    assert(git.rev_parse(W, "HEAD~2") == p.v2)
    local h = git.head(W)
    assert(h.branch == "main" and h.detached == false and h.tag == nil, json.encode(h))
    assert(h.summary == 'Revert "release 2.0.1: the bad one"')
    local d = git.diff_names{ repo = W, from = "HEAD~1", to = "HEAD" }
    assert(#d == 1 and d[1] == "app.py", json.encode(d))
    assert(git.status(W).clean)
  )");
  // The new commit's id depends on the clock: unknown, saying why.
  Fixture f;
  TempDir dry;
  auto r = run(f, dry.path(), act, "git.head(W) git.rev_parse(W, 'HEAD')", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  int seen = 0;
  for (const auto& e : r.events.effects) {
    if (e.name == "git.head") {
      ++seen;
      EXPECT_EQ(e.status, "predicted");
      EXPECT_TRUE(is_unknown(e.result["commit"])) << e.result.dump();
      EXPECT_EQ(unknown_why(e.result["commit"]), "git.head after git.revert v2.0.1 in " + f.work);
      EXPECT_EQ(e.result["branch"], "main");
    }
    if (e.name == "git.rev_parse") {
      ++seen;
      EXPECT_EQ(unknown_why(e.result), "git.rev_parse after git.revert v2.0.1 in " + f.work)
          << e.result.dump();
    }
  }
  EXPECT_EQ(seen, 2);
  expect_wrong_fails(act, R"(assert(git.rev_parse(W, "HEAD~1") == p.v2, "one too far"))",
                     "one too far");
  expect_wrong_fails(act, R"(assert(git.log{ repo = W }[1].summary == "release 2.0.1: the bad one", "not reverted"))",
                     "not reverted");
}

TEST(PredictGit, CherryPickPredictsTheNewCommitOnTheBranch) {
  const char* act = R"(
    git.checkout{ repo = W, ref = "v2.0.0" }
    git.cherry_pick{ repo = W, commit = "hotfix" }
  )";
  expect_predicted_then_live(act, R"(
    local log = git.log{ repo = W, max = 2 }
    assert(log[1].summary == "hotfix" and log[2].commit == p.v2, json.encode(log))
    assert(git.rev_parse(W, "HEAD^") == p.v2)
    local d = git.diff_names{ repo = W, from = "v2.0.0" }
    assert(#d == 1 and d[1] == "hotfix.txt", json.encode(d))
    assert(git.head(W).detached == true)
    assert(git.status(W).clean)
  )");
  expect_wrong_fails(act, R"(assert(#git.diff_names{ repo = W, from = "v2.0.0" } == 0, "nothing picked"))",
                     "nothing picked");
}

TEST(PredictGit, CommitTagAndBranchByRunId) {
  auto prepare = [](Fixture& f) {
    write_file(f.work + "/config.ini", "a=2\n");
    write_file(f.work + "/extra.txt", "x\n");
  };
  const char* act = R"(
    git.tag{ repo = W, name = "before-" .. run.id }
    git.branch{ repo = W, name = "backup/" .. run.id }
    git.commit{ repo = W, message = "emergency: config\n\nbody" }
    git.reset{ repo = W, ref = "before-" .. run.id, hard = true }
    git.commit{ repo = W, message = "nothing here" }
  )";
  expect_predicted_then_live(act, R"(
    assert(git.rev_parse(W, "before-" .. run.id) == p.v201)
    assert(git.rev_parse(W, "refs/heads/backup/" .. run.id) == p.v201)
    local h = git.head(W)
    assert(h.commit == p.v201 and h.tag == "before-" .. run.id, json.encode(h))
    local t = {}
    for _, n in ipairs(h.tags) do t[#t + 1] = n end
    assert(#t == 2, json.encode(h.tags))
    assert(git.status(W).clean)
    local log = git.log{ repo = W, ref = "main", max = 1 }
    assert(log[1].commit == p.v201, json.encode(log))
  )",
                             prepare);
  expect_wrong_fails(act, R"(assert(git.rev_parse(W, "before-" .. run.id) == p.v1, "tag moved"))",
                     "tag moved", prepare);
}

TEST(PredictGit, CommitPredictsTheNewHead) {
  auto prepare = [](Fixture& f) { write_file(f.work + "/config.ini", "a=2\n"); };
  const char* act = R"(git.commit{ repo = W, message = "tune config" })";
  expect_predicted_then_live(act, R"(
    local log = git.log{ repo = W, max = 2 }
    assert(log[1].summary == "tune config" and log[1].email == "tester@example.com", json.encode(log))
    assert(log[2].commit == p.v201)
    assert(git.rev_parse(W, "HEAD~") == p.v201)
    local d = git.diff_names{ repo = W, from = "v2.0.1", to = "HEAD" }
    assert(#d == 1 and d[1] == "config.ini", json.encode(d))
    assert(git.status(W).clean and git.head(W).branch == "main")
  )",
                             prepare);
  expect_wrong_fails(act, R"(assert(#git.status(W).modified == 1, "still modified"))",
                     "still modified", prepare);
}

TEST(PredictGit, StashAndCleanLeaveACleanTree) {
  auto prepare = [](Fixture& f) {
    write_file(f.work + "/config.ini", "a=hand-tuned\n");
    write_file(f.work + "/stray/file.txt", "stray\n");
    write_file(f.work + "/debug.log", "ignored\n");
  };
  const char* act = R"(
    git.stash{ repo = W }
    git.clean{ repo = W }
  )";
  expect_predicted_then_live(act, R"(
    local s = git.status(W)
    assert(s.clean and s.tracked_clean and #s.untracked == 0, json.encode(s))
    assert(git.head(W).commit == p.v201)
  )",
                             prepare);
  expect_wrong_fails(act, R"(assert(#git.status(W).untracked == 1, "stray kept"))", "stray kept",
                     prepare);
}

TEST(PredictGit, NoPlannedChangeMeansTheProbesAreLive) {
  Fixture f;
  TempDir dry;
  auto r = run(f, dry.path(), "git.head(W)", "assert(git.head(W).commit == p.v201)", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  for (const auto& e : r.events.effects) EXPECT_EQ(e.status, "ok") << e.name;
}

// ---- the dry-run fails where the live run would --------------------------------------------

TEST(PredictGit, UncommittedEditFailsTheDryRunAtTheCheckoutAndSavesNoPlan) {
  Fixture f;
  write_file(f.work + "/app.py", "hand edit\n");
  TempDir d;
  std::string file = d / "rollback.lua";
  write_file(file, R"(
runbook { name = 'rollback', version = '1.0.0', params = { w = { type = 'path' } } }
step('stop the app', function(p) exec{ "true" } end)
step('check out', function(p) git.checkout{ repo = p.w, ref = "v2.0.0" } end)
step('verify', function(p) assert(git.head(p.w).tag == "v2.0.0") end)
)");
  std::string before = f.state();
  auto r = run_cli({"exec", file, "--dry-run", "--save-plan", d / "p.json", "--journal",
                    d / "j.db", "-p", "w=" + f.work});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  std::string all = r.out + r.err;
  EXPECT_NE(all.find("the live run would fail here"), std::string::npos) << all;
  EXPECT_NE(all.find("uncommitted changes to app.py"), std::string::npos) << all;
  EXPECT_FALSE(stdfs::exists(d / "p.json")) << "a plan was saved from a failed rehearsal";
  EXPECT_EQ(f.state(), before);

  // Live, it fails at the same place with the same words.
  auto l = run_cli({"exec", file, "--journal", d / "j.db", "-p", "w=" + f.work});
  EXPECT_EQ(l.code, 1) << l.out << l.err;
  EXPECT_NE((l.out + l.err).find("uncommitted changes to app.py"), std::string::npos);
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.1"));
}

TEST(PredictGit, EveryRefusalTheLiveRunWouldMeetFailsTheDryRun) {
  struct Case {
    std::string act, needle;
    std::function<void(Fixture&)> prepare;
  };
  std::vector<Case> cases = {
      {R"(git.checkout{ repo = W, ref = "v9.9.9" })", "unknown ref 'v9.9.9'", {}},
      {R"(git.reset{ repo = W, ref = "nope", hard = true })", "unknown ref 'nope'", {}},
      {R"(git.tag{ repo = W, name = "v1.0.0" })", "tag 'v1.0.0' already exists at", {}},
      {R"(git.tag{ repo = W, name = "x" } git.tag{ repo = W, name = "x" })",
       "tag 'x' already exists at", {}},
      {R"(git.branch{ repo = W, name = "hotfix" })", "branch 'hotfix' already exists at", {}},
      {R"(git.checkout{ repo = W .. "/..", ref = "v1.0.0" })", "is not a git repository", {}},
      {R"(git.revert{ repo = W, commit = "v2.0.0" })", "conflicts in app.py", {}},
      {R"(git.cherry_pick{ repo = W, commit = "v1.0.0" })", "conflicts in", {}},
      {R"(git.revert{ repo = W, commit = "v2.0.1" })", "uncommitted changes to app.py",
       [](Fixture& f) { write_file(f.work + "/app.py", "edit\n"); }},
      {R"(git.checkout{ repo = W, ref = "v1.0.0" })", "local files are in the way: legacy.txt",
       [](Fixture& f) { write_file(f.work + "/legacy.txt", "mine\n"); }},
      {R"(git.reset{ repo = W, ref = "v1.0.0" } git.checkout{ repo = W, ref = "v2.0.0" })",
       "uncommitted changes", {}},
  };
  for (const auto& c : cases) {
    Fixture f;
    if (c.prepare) c.prepare(f);
    std::string before = f.state();
    TempDir dry;
    auto r = run(f, dry.path(), c.act, "", Mode::DryRun);
    EXPECT_EQ(r.result.exit_code, 1) << c.act;
    EXPECT_NE(err_of(r).find("the live run would fail here"), std::string::npos)
        << c.act << ": " << err_of(r);
    EXPECT_NE(err_of(r).find(c.needle), std::string::npos) << c.act << ": " << err_of(r);
    EXPECT_EQ(f.state(), before) << c.act;
    TempDir live;
    auto l = run(f, live.path(), c.act, "", Mode::Live);
    EXPECT_EQ(l.result.exit_code, 1) << "live accepted what the dry-run refused: " << c.act;
    EXPECT_NE(err_of(l).find(c.needle), std::string::npos) << c.act << ": " << err_of(l);
  }
}

TEST(PredictGit, WhatApplyAcceptsDoesNotFailTheDryRun) {
  Fixture f;
  write_file(f.work + "/config.ini", "hand\n");
  write_file(f.work + "/legacy.txt", "in the way\n");
  const char* act = R"(
    git.checkout{ repo = W, ref = "v2.0.0", stash = true }
    git.checkout{ repo = W, ref = "main" }
    git.reset{ repo = W, ref = "v1.0.0", hard = true }
    git.tag{ repo = W, name = "v2.0.0", ref = "v1.0.0", force = true }
    git.commit{ repo = W, message = "nothing" }
    git.stash{ repo = W }
    git.clean{ repo = W }
    local c = git.checkout{ repo = W, ref = "v2.0.0" }
  )";
  std::string before = f.state();
  TempDir dry;
  const char* verify = "assert(git.head(W).commit == p.v1 and #git.head(W).tags == 2)";
  auto r = run(f, dry.path(), act, verify, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(f.state(), before);
  TempDir live;
  auto l = run(f, live.path(), act, verify, Mode::Live);
  EXPECT_EQ(l.result.exit_code, 0) << err_of(l);
}

// ---- the basis a saved plan is checked against ----------------------------------------------

TEST(PredictGit, PreviewsCarryTheBasis) {
  Fixture f;
  write_file(f.work + "/config.ini", "hand\n");
  TempDir dry;
  auto r = run(f, dry.path(), R"(
    git.checkout{ repo = W, ref = "v2.0.0", stash = true }
    git.tag{ repo = W, name = "t", ref = "v1.0.0" }
    git.reset{ repo = W, ref = "t", hard = true }
  )",
               "", Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  std::vector<json> bases;
  for (const auto& e : r.events.effects)
    if (e.kind == Kind::Change) bases.push_back(e.preview.value("basis", json()));
  ASSERT_EQ(bases.size(), 3u);
  EXPECT_EQ(bases[0]["head"], f.sha("HEAD"));
  EXPECT_EQ(bases[0]["target"], f.sha("v2.0.0"));
  EXPECT_EQ(bases[0]["dirty"], json::array({"config.ini"}));
  EXPECT_EQ(bases[1]["target"], f.sha("v1.0.0"));
  EXPECT_EQ(bases[1]["previous"], nullptr);
  EXPECT_EQ(bases[2]["head"], f.sha("HEAD")) << "the world's HEAD, not the predicted one";
  EXPECT_EQ(bases[2]["target"], f.sha("v1.0.0")) << "the planned tag resolves";
  // Deterministic: the same world gives the same basis.
  TempDir again;
  auto r2 = run(f, again.path(), R"(
    git.checkout{ repo = W, ref = "v2.0.0", stash = true }
  )",
                "", Mode::DryRun);
  ASSERT_EQ(r2.result.exit_code, 0) << err_of(r2);
  EXPECT_EQ(r2.events.effects[0].preview["basis"], bases[0]);
}
