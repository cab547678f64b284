// git.* against real repositories built in temp dirs, with a local bare repository as the
// remote. The fixtures are made with the `git` CLI (tests only: the engine never spawns git), and
// the effects are driven from Lua as a runbook would drive them.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "dispatch/context.h"
#include "dispatch/registry.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

// Runs a shell command for fixture setup and returns its stdout, trimmed; fails the test on a
// non-zero exit.
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

// dir/origin.git (bare) and dir/work (a clone) with three tagged releases on main:
//   v1.0.0: app.py "v1", config.ini, legacy.txt   v2.0.0: app.py "v2", new.py, no legacy.txt
//   v2.0.1 (the bad one, HEAD): app.py "v3 bad"
struct Fixture {
  TempDir dir;
  std::string origin = dir / "origin.git";
  std::string work = dir / "work";

  Fixture() {
    sh("git init -q --bare -b main '" + origin + "'");
    sh("git clone -q '" + origin + "' '" + work + "'");
    configure(work);
    write_file(work + "/app.py", "v1\n");
    write_file(work + "/config.ini", "a=1\n");
    write_file(work + "/legacy.txt", "old\n");
    write_file(work + "/.gitignore", "*.log\n");
    commit(work, "release 1");
    git(work, "tag -a v1.0.0 -m 'v1.0.0'");
    write_file(work + "/app.py", "v2\n");
    write_file(work + "/new.py", "print('new')\n");
    git(work, "rm -q legacy.txt");
    commit(work, "release 2");
    git(work, "tag v2.0.0");
    write_file(work + "/app.py", "v3 bad\n");
    commit(work, "release 2.0.1: the bad one");
    git(work, "tag v2.0.1");
    git(work, "push -q origin main --tags");
  }
  static void configure(const std::string& repo) {
    git(repo, "config user.name Tester");
    git(repo, "config user.email tester@example.com");
  }
  static void commit(const std::string& repo, const std::string& msg) {
    git(repo, "add -A");
    git(repo, "commit -q -m '" + msg + "'");
  }
  std::string sha(const std::string& rev) const {
    return git(work, "rev-parse '" + rev + "^{commit}'");
  }
};

// Runs `body` as one step; `p.dir` is the fixture's directory, W its work tree, O its origin.
LuaRun step(const std::string& dir, const std::string& run_dir, const std::string& body,
            Mode mode = Mode::Live) {
  std::string code =
      "runbook { name = 'git', version = '1.0.0', params = { dir = { type = 'path' } } }\n"
      "step('s', function(p)\n"
      "local W, O = p.dir .. '/work', p.dir .. '/origin.git'\n" +
      body + "\nend)\n";
  return run_lua(run_dir, code, mode, {{"dir", dir}});
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

const EffectEvent* event(const LuaRun& r, const std::string& name, size_t nth = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && nth-- == 0) return &e;
  return nullptr;
}

std::string preview_text(const EffectEvent* e) {
  if (!e) return "(no such effect)";
  if (e->preview.is_string()) return e->preview.get<std::string>();
  if (e->preview.is_object() && e->preview.contains("text"))
    return e->preview["text"].get<std::string>();
  return e->preview.dump();
}

}  // namespace

TEST(GitProbe, HeadStatusRevParseLogDiffNames) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/config.ini", "a=2\n");
  write_file(f.work + "/notes.txt", "scratch\n");
  write_file(f.work + "/staged.py", "x\n");
  git(f.work, "add staged.py");
  auto r = step(f.dir.path(), run.path(),
                R"(
    local h = git.head{ repo = W }
    assert(h.commit == ")" +
                    f.sha("HEAD") + R"(", h.commit)
    assert(h.short == h.commit:sub(1, 7))
    assert(h.ref == "refs/heads/main" and h.branch == "main" and h.detached == false, json.encode(h))
    assert(h.tag == "v2.0.1", tostring(h.tag))
    local s = git.status{ repo = W }
    assert(s.clean == false and s.tracked_clean == false)
    assert(#s.modified == 1 and s.modified[1] == "config.ini", json.encode(s))
    assert(#s.untracked == 1 and s.untracked[1] == "notes.txt", json.encode(s))
    assert(#s.staged == 1 and s.staged[1] == "staged.py", json.encode(s))
    assert(git.rev_parse{ repo = W, ref = "HEAD~1" } == ")" +
                    f.sha("v2.0.0") + R"(")
    assert(git.rev_parse{ repo = W, ref = "v1.0.0" } == ")" +
                    f.sha("v1.0.0") + R"(", "an annotated tag means its commit")
    local log = git.log{ repo = W, max = 2 }
    assert(#log == 2, #log)
    assert(log[1].summary == "release 2.0.1: the bad one" and log[2].summary == "release 2", json.encode(log))
    assert(log[1].author == "Tester" and log[1].time > 1600000000 and log[1].date:match("^%d%d%d%d%-"))
    assert(#git.log{ repo = W, ref = "v1.0.0" } == 1)
    local names = git.diff_names{ repo = W, from = "v1.0.0" }
    assert(json.encode(names) == '["app.py","legacy.txt","new.py"]', json.encode(names))
    assert(#git.diff_names{ repo = W, from = "v2.0.0", to = "v2.0.1" } == 1)
    local wt = git.diff_names{ repo = W, from = "HEAD", worktree = true }
    assert(json.encode(wt) == '["config.ini","staged.py"]', json.encode(wt))
    local range = git.log{ repo = W, ref = "v1.0.0..HEAD" }
    assert(#range == 2 and range[2].summary == "release 2", json.encode(range))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);

  // Detached: ref is nil.
  git(f.work, "checkout -q --detach v2.0.0");
  auto d = step(f.dir.path(), run.path(), R"(
    local h = git.head(W)
    assert(h.ref == nil and h.detached == true and h.tag == "v2.0.0", json.encode(h))
  )");
  EXPECT_EQ(d.result.exit_code, 0) << err_of(d);
}

TEST(GitProbe, NotARepoAndUnknownRefAreClearErrors) {
  Fixture f;
  TempDir run, plain;
  auto r = step(f.dir.path(), run.path(), "git.head{ repo = '" + plain.path() + "' }");
  EXPECT_NE(err_of(r).find("git.head: " + plain.path() + " is not a git repository"),
            std::string::npos)
      << err_of(r);
  auto u = step(f.dir.path(), run.path(), "git.checkout{ repo = W, ref = 'v9.9.9' }");
  EXPECT_NE(err_of(u).find("git.checkout: unknown ref 'v9.9.9' in " + f.work), std::string::npos)
      << err_of(u);
  auto m = step(f.dir.path(), run.path(), "git.status{ repo = p.dir .. '/missing' }");
  EXPECT_NE(err_of(m).find("git.status: " + f.dir.path() + "/missing does not exist"),
            std::string::npos)
      << err_of(m);
  // A subdirectory of a repository is not the repository: a reset must never climb to a parent.
  sh("mkdir -p '" + f.work + "/sub'");
  auto s = step(f.dir.path(), run.path(),
                "git.reset{ repo = W .. '/sub', ref = 'v1.0.0', hard = true }");
  EXPECT_NE(err_of(s).find("is not a git repository"), std::string::npos) << err_of(s);
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.1"));
}

TEST(GitRefs, TagRefusesAnExistingOneUnlessForceAndBranchDoesNotMoveHead) {
  Fixture f;
  TempDir run;
  auto r = step(f.dir.path(), run.path(), R"(
    local t = git.tag{ repo = W, name = "emergency-backup" }
    assert(t.ref == "refs/tags/emergency-backup" and t.commit == git.head(W).commit and t.annotated == false)
    local ok, err = pcall(git.tag, { repo = W, name = "emergency-backup", ref = "v1.0.0" })
    assert(not ok and tostring(err):find("git.tag: tag 'emergency%-backup' already exists at"), tostring(err))
    local moved = git.tag{ repo = W, name = "emergency-backup", ref = "v1.0.0", force = true }
    assert(moved.previous == t.commit, json.encode(moved))
    local a = git.tag{ repo = W, name = "before-rollback", message = "state before the rollback" }
    assert(a.annotated == true)
    local b = git.branch{ repo = W, name = "backup/x", ref = "HEAD~1" }
    assert(b.ref == "refs/heads/backup/x" and b.commit == git.rev_parse(W, "v2.0.0"))
    local ok2, err2 = pcall(git.branch, { repo = W, name = "backup/x" })
    assert(not ok2 and tostring(err2):find("already exists"), tostring(err2))
    local bad, err3 = pcall(git.tag, { repo = W, name = "no..dots" })
    assert(not bad and tostring(err3):find("not a valid name"), tostring(err3))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(f.sha("emergency-backup"), f.sha("v1.0.0"));
  EXPECT_EQ(git(f.work, "cat-file -t before-rollback"), "tag");
  EXPECT_EQ(git(f.work, "tag -l --format='%(contents:subject)' before-rollback"),
            "state before the rollback");
  EXPECT_EQ(f.sha("backup/x"), f.sha("v2.0.0"));
  EXPECT_EQ(git(f.work, "symbolic-ref HEAD"), "refs/heads/main");
  EXPECT_EQ(verify_effect("git.tag", {{"repo", f.work}, {"name", "emergency-backup"}, {"ref", "v1.0.0"}}),
            true);
  EXPECT_EQ(verify_effect("git.tag", {{"repo", f.work}, {"name", "emergency-backup"}}), false);
  EXPECT_EQ(verify_effect("git.branch", {{"repo", f.work}, {"name", "backup/x"}, {"ref", "v2.0.0"}}),
            true);
  EXPECT_EQ(verify_effect("git.branch", {{"repo", f.work}, {"name", "backup/none"}}), false);
}

TEST(GitCheckout, DetachedAtATagThenBackToTheBranch) {
  Fixture f;
  TempDir run;
  auto r = step(f.dir.path(), run.path(), R"(
    local c = git.checkout{ repo = W, ref = "v2.0.0" }
    assert(c.detached == true and c.branch == nil and c.commit == git.rev_parse(W, "v2.0.0"), json.encode(c))
    assert(c.previous.ref == "refs/heads/main" and c.files == 1 and c.changed[1] == "app.py", json.encode(c))
    assert(fs.read(W .. "/app.py") == "v2\n")
    local h = git.head(W)
    assert(h.detached and h.tag == "v2.0.0")
    local v1 = git.checkout{ repo = W, ref = "v1.0.0" }
    assert(fs.read(W .. "/legacy.txt") == "old\n" and not fs.exists(W .. "/new.py"))
    local m = git.checkout{ repo = W, ref = "main" }
    assert(m.branch == "main" and m.detached == false)
    assert(git.head(W).ref == "refs/heads/main")
    assert(fs.read(W .. "/app.py") == "v3 bad\n" and not fs.exists(W .. "/legacy.txt"))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.work, "status --porcelain"), "");
  EXPECT_EQ(verify_effect("git.checkout", {{"repo", f.work}, {"ref", "main"}}), true);
  EXPECT_EQ(verify_effect("git.checkout", {{"repo", f.work}, {"ref", "v2.0.0"}}), false);
}

TEST(GitCheckout, RefusedOverUncommittedChangesUnlessStash) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/app.py", "hand edit in production\n");
  auto r = step(f.dir.path(), run.path(), "git.checkout{ repo = W, ref = 'v2.0.0' }");
  EXPECT_NE(err_of(r).find(
                "git.checkout: uncommitted changes to app.py; commit them, or pass stash = true"),
            std::string::npos)
      << err_of(r);
  EXPECT_EQ(read_file(f.work + "/app.py"), "hand edit in production\n");
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.1"));

  auto s = step(f.dir.path(), run.path(), R"(
    local c = git.checkout{ repo = W, ref = "v2.0.0", stash = true }
    assert(c.stash and #c.stash == 40, json.encode(c))
    assert(fs.read(W .. "/app.py") == "v2\n")
  )");
  EXPECT_EQ(s.result.exit_code, 0) << err_of(s);
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.0"));
  // The hand edit is in the stash, recoverable.
  EXPECT_EQ(git(f.work, "show stash@{0}:app.py"), "hand edit in production");
}

TEST(GitCheckout, UntrackedFileInTheWayIsRefusedAndKept) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/legacy.txt", "someone's notes\n");
  auto r = step(f.dir.path(), run.path(), "git.checkout{ repo = W, ref = 'v1.0.0' }");
  EXPECT_NE(err_of(r).find("local files are in the way: legacy.txt"), std::string::npos)
      << err_of(r);
  EXPECT_EQ(read_file(f.work + "/legacy.txt"), "someone's notes\n");
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.1"));
  EXPECT_EQ(read_file(f.work + "/app.py"), "v3 bad\n");
}

TEST(GitCheckout, PathsRestoreFilesFromARefAndKeepWhatTheyOverwrite) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/app.py", "local hotfix\n");
  auto r = step(f.dir.path(), run.path(), R"(
    local c = git.checkout{ repo = W, ref = "v1.0.0", paths = { "app.py", "config.ini" } }
    assert(fs.read(W .. "/app.py") == "v1\n")
    assert(#c.files == 1 and c.files[1] == "app.py", json.encode(c))
    assert(#c.saved == 1 and c.saved[1].path == "app.py", json.encode(c))
    assert(fs.read(c.saved[1].to) == "local hotfix\n")
    assert(git.head(W).tag == "v2.0.1", "HEAD does not move")
    assert(fs.exists(W .. "/new.py"), "files outside paths are untouched")
    local ok, err = pcall(git.checkout, { repo = W, ref = "v1.0.0", paths = { "nope.py" } })
    assert(not ok and tostring(err):find("'nope.py' is not in v1.0.0"), tostring(err))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  // The index follows, as with `git checkout <ref> -- <paths>`: the restore is staged.
  EXPECT_EQ(git(f.work, "diff --cached --name-only"), "app.py");
  EXPECT_EQ(git(f.work, "diff --name-only"), "");
  EXPECT_EQ(verify_effect("git.checkout", {{"repo", f.work}, {"ref", "v1.0.0"}, {"paths", {"app.py"}}}),
            true);
  EXPECT_EQ(verify_effect("git.checkout", {{"repo", f.work}, {"ref", "v2.0.0"}, {"paths", {"app.py"}}}),
            false);
}

TEST(GitReset, HardKeepsABackupRefASnapshotAndTheUntrackedFilesInTheRunsArtifacts) {
  Fixture f;
  TempDir run;
  std::string bad = f.sha("HEAD");
  write_file(f.work + "/config.ini", "a=hand-tuned\n");  // tracked, uncommitted
  write_file(f.work + "/staged.py", "staged only\n");    // new, staged: a hard reset removes it
  git(f.work, "add staged.py");
  write_file(f.work + "/legacy.txt", "local notes\n");  // untracked, in the way of v1.0.0
  write_file(f.work + "/notes.txt", "keep me\n");       // untracked, not in the way
  auto r = step(f.dir.path(), run.path(), R"(
    local r = git.reset{ repo = W, ref = "v1.0.0", hard = true }
    assert(r.mode == "hard" and r.commit == git.rev_parse(W, "v1.0.0"), json.encode(r))
    assert(r.backup.ref:match("^refs/runbook/backup/%d+/1/head$"), r.backup.ref)
    assert(r.backup.head == ")" + bad + R"(")
    assert(r.backup.changes_ref:match("/1/changes$"), json.encode(r.backup))
    assert(#r.moved == 1 and r.moved[1] == "legacy.txt", json.encode(r.moved))
    assert(fs.read(r.moved_to .. "/legacy.txt") == "local notes\n", r.moved_to)
    assert(fs.read(W .. "/legacy.txt") == "old\n")
    assert(fs.read(W .. "/notes.txt") == "keep me\n", "untracked files not in the way stay")
    assert(not fs.exists(W .. "/staged.py"))
    -- a second guarded reset in the same run gets the next backup number
    local r2 = git.reset{ repo = W, ref = "v2.0.0", hard = true }
    assert(r2.backup.ref:match("/2/head$") and r2.backup.changes_ref == nil, json.encode(r2.backup))
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  std::string prefix = "refs/runbook/backup/" + std::to_string(r.result.run_id) + "/1";
  EXPECT_EQ(git(f.work, "rev-parse " + prefix + "/head"), bad);
  // Everything the reset overwrote is recoverable from the snapshot commit.
  EXPECT_EQ(git(f.work, "show " + prefix + "/changes:config.ini"), "a=hand-tuned");
  EXPECT_EQ(git(f.work, "show " + prefix + "/changes:staged.py"), "staged only");
  EXPECT_EQ(git(f.work, "rev-parse " + prefix + "/changes^"), bad);
  EXPECT_EQ(f.sha("HEAD"), f.sha("v2.0.0"));
  EXPECT_EQ(git(f.work, "symbolic-ref HEAD"), "refs/heads/main");
  EXPECT_EQ(git(f.work, "status --porcelain"), "?? notes.txt");
  EXPECT_EQ(verify_effect("git.reset", {{"repo", f.work}, {"ref", "v2.0.0"}, {"hard", true}}), true);
  EXPECT_EQ(verify_effect("git.reset", {{"repo", f.work}, {"ref", "v1.0.0"}, {"hard", true}}), false);
  // HEAD~1 names another commit once the reset has run: verify cannot tell, and says so.
  EXPECT_EQ(verify_effect("git.reset", {{"repo", f.work}, {"ref", "HEAD~1"}, {"hard", true}}), nullptr);
  EXPECT_EQ(verify_effect("git.reset", {{"repo", f.work}, {"ref", "main~1"}}), nullptr);
}

TEST(GitReset, MixedMovesTheBranchAndKeepsTheWorkTree) {
  Fixture f;
  TempDir run;
  auto r = step(f.dir.path(), run.path(), R"(
    local r = git.reset{ repo = W, ref = "HEAD~1" }
    assert(r.mode == "mixed" and r.backup == nil)
    assert(fs.read(W .. "/app.py") == "v3 bad\n")
    local s = git.status(W)
    assert(#s.modified == 1 and s.modified[1] == "app.py", json.encode(s))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.work, "rev-parse main"), f.sha("v2.0.0"));
}

TEST(GitClean, MovesUntrackedFilesIntoArtifactsIgnoredOnlyWhenAsked) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/stray.txt", "stray\n");
  write_file(f.work + "/tmp/deep/x.bin", "x\n");
  write_file(f.work + "/debug.log", "log\n");
  auto r = step(f.dir.path(), run.path(), R"(
    local c = git.clean{ repo = W }
    assert(c.count == 2, json.encode(c))
    assert(json.encode(c.moved) == '["stray.txt","tmp/deep/x.bin"]', json.encode(c.moved))
    assert(fs.read(c.moved_to .. "/stray.txt") == "stray\n")
    assert(fs.read(c.moved_to .. "/tmp/deep/x.bin") == "x\n")
    assert(not fs.exists(W .. "/tmp"), "emptied directories go too")
    assert(fs.exists(W .. "/debug.log"), "ignored files stay unless ignored = true")
    assert(c.backup.ref:match("/1/head$"))
    local c2 = git.clean{ repo = W, ignored = true }
    assert(c2.count == 1 and c2.moved[1] == "debug.log" and fs.read(c2.moved_to .. "/debug.log") == "log\n")
    local c3 = git.clean{ repo = W }
    assert(c3.count == 0 and c3.moved_to == nil and c3.backup == nil)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.work, "status --porcelain --ignored"), "");
  EXPECT_EQ(verify_effect("git.clean", {{"repo", f.work}}), true);
}

// The L1 "full reset" of the sources cleans with -x; `exclude` keeps what must survive it (the
// .env with the production secrets, the local database), like git clean -e.
TEST(GitClean, ExcludeKeepsFilesAndDirectoriesOut) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/.env", "SECRET=1\n");
  write_file(f.work + "/data/app.db", "db\n");
  write_file(f.work + "/data2/x", "x\n");
  write_file(f.work + "/stray.txt", "stray\n");
  auto r = step(f.dir.path(), run.path(), R"(
    local plan = git.clean{ repo = W, exclude = { ".env", "data/" } }
    assert(json.encode(plan.moved) == '["data2/x","stray.txt"]', json.encode(plan.moved))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(read_file(f.work + "/.env"), "SECRET=1\n");
  EXPECT_EQ(read_file(f.work + "/data/app.db"), "db\n");
  EXPECT_FALSE(std::filesystem::exists(f.work + "/stray.txt"));
  EXPECT_FALSE(std::filesystem::exists(f.work + "/data2"));
}

TEST(GitCommit, CommitsEverythingLikeAddAllAndSaysWhenThereIsNothing) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/config.ini", "a=2\n");
  write_file(f.work + "/wip.py", "wip\n");
  write_file(f.work + "/debug.log", "ignored\n");
  git(f.work, "rm -q --cached new.py");
  sh("rm '" + f.work + "/new.py'");
  auto r = step(f.dir.path(), run.path(), R"(
    local c = git.commit{ repo = W, message = "WIP before rollback" }
    assert(c.committed and json.encode(c.files) == '["config.ini","new.py","wip.py"]', json.encode(c))
    assert(git.head(W).commit == c.commit)
    local again = git.commit{ repo = W, message = "nothing" }
    assert(again.committed == false and again.commit == c.commit)
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.work, "log -1 --format=%s"), "WIP before rollback");
  EXPECT_EQ(git(f.work, "rev-parse HEAD^"), f.sha("v2.0.1"));
  EXPECT_EQ(git(f.work, "status --porcelain"), "");
  EXPECT_EQ(git(f.work, "show HEAD:wip.py"), "wip");
}

TEST(GitClean, WorksInARepositoryWithNoCommitsYet) {
  TempDir d, run;
  sh("git init -q -b main '" + d.path() + "/work'");
  write_file(d / "work/a.txt", "a\n");
  auto r = step(d.path(), run.path(), R"(
    local c = git.clean{ repo = W }
    assert(c.count == 1 and fs.read(c.moved_to .. "/a.txt") == "a\n" and c.backup.ref == nil, json.encode(c))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_FALSE(stdfs::exists(d / "work/a.txt"));
}

TEST(GitStash, StashesAndSaysWhenThereIsNothing) {
  Fixture f;
  TempDir run;
  write_file(f.work + "/app.py", "edit\n");
  write_file(f.work + "/untracked.txt", "u\n");
  auto r = step(f.dir.path(), run.path(), R"(
    local s = git.stash{ repo = W, message = "before rollback", untracked = true }
    assert(s.stashed == true and #s.commit == 40, json.encode(s))
    assert(git.status(W).clean)
    local again = git.stash{ repo = W, message = "nothing" }
    assert(again.stashed == false and again.commit == nil)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_NE(git(f.work, "stash list").find("before rollback"), std::string::npos);
  EXPECT_EQ(git(f.work, "show stash@{0}:app.py"), "edit");
}

TEST(GitHistory, RevertCommitsTheUndoAndRefusesAConflictLeavingTheTreeClean) {
  Fixture f;
  TempDir run;
  std::string bad = f.sha("v2.0.1");
  // Reverting release 2 conflicts (app.py changed again in 2.0.1): refused, nothing touched.
  auto c = step(f.dir.path(), run.path(), "git.revert{ repo = W, commit = 'v1.0.0..v2.0.0' }");
  EXPECT_NE(err_of(c).find("git.revert: reverting "), std::string::npos) << err_of(c);
  EXPECT_NE(err_of(c).find("conflicts in app.py; nothing was changed"), std::string::npos)
      << err_of(c);
  EXPECT_EQ(f.sha("HEAD"), bad);
  EXPECT_EQ(git(f.work, "status --porcelain"), "");
  EXPECT_EQ(read_file(f.work + "/app.py"), "v3 bad\n");

  auto r = step(f.dir.path(), run.path(), R"(
    local r = git.revert{ repo = W, commit = "v2.0.1" }
    assert(r.reverted[1] == ")" + bad + R"(" and #r.commit == 40, json.encode(r))
    assert(json.encode(r.files) == '["app.py"]')
    assert(fs.read(W .. "/app.py") == "v2\n")
    assert(git.log{ repo = W, max = 1 }[1].summary == 'Revert "release 2.0.1: the bad one"')
    assert(git.status(W).clean)
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_NE(git(f.work, "log -1 --format=%B").find("This reverts commit " + bad + "."),
            std::string::npos);
  EXPECT_EQ(git(f.work, "rev-parse HEAD^"), bad);
  EXPECT_EQ(verify_effect("git.revert", {{"repo", f.work}, {"commit", bad}}), true);
  EXPECT_EQ(verify_effect("git.revert", {{"repo", f.work}, {"commit", "v2.0.0"}}), false);
  EXPECT_EQ(verify_effect("git.revert", {{"repo", f.work}, {"commit", "HEAD"}}), nullptr);
}

TEST(GitHistory, CherryPickAppliesAHotfixFromAnotherBranch) {
  Fixture f;
  TempDir run;
  git(f.work, "checkout -q -b hotfix v2.0.0");
  write_file(f.work + "/fix.py", "fixed = True\n");
  Fixture::commit(f.work, "hotfix: add fix.py");
  std::string fix = f.sha("HEAD");
  git(f.work, "checkout -q main");
  auto r = step(f.dir.path(), run.path(),
                R"(
    local r = git.cherry_pick{ repo = W, commit = "hotfix" }
    assert(r.picked[1] == ")" +
                    fix + R"(" and r.files[1] == "fix.py", json.encode(r))
    assert(fs.read(W .. "/fix.py") == "fixed = True\n")
    local again = git.cherry_pick{ repo = W, commit = ")" +
                    fix + R"(" }
    assert(#again.skipped == 1 and again.commit == r.commit, "picking it twice changes nothing")
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.work, "log -1 --format=%an"), "Tester");
  EXPECT_NE(git(f.work, "log -1 --format=%B").find("(cherry picked from commit " + fix + ")"),
            std::string::npos);
  EXPECT_EQ(git(f.work, "rev-parse HEAD^"), f.sha("v2.0.1"));
  EXPECT_EQ(verify_effect("git.cherry_pick", {{"repo", f.work}, {"commit", fix}}), true);
}

TEST(GitRemote, PushFetchAndForceWithLeaseRefusesWhenTheRemoteMoved) {
  Fixture f;
  TempDir run;
  std::string other = f.dir / "other";
  sh("git clone -q '" + f.origin + "' '" + other + "'");
  Fixture::configure(other);

  // We push a fix; the other clone fetches it through git.fetch.
  write_file(f.work + "/fix.py", "1\n");
  Fixture::commit(f.work, "fix 1");
  auto r = step(f.dir.path(), run.path(), R"(
    local pu = git.push{ repo = W, refspec = "main" }
    assert(pu.ref == "refs/heads/main" and pu.to == git.head(W).commit and pu.forced == false, json.encode(pu))
    local fe = git.fetch{ repo = p.dir .. "/other" }
    assert(#fe.updated == 1 and fe.updated[1].ref == "refs/remotes/origin/main" and fe.updated[1].to == pu.to,
           json.encode(fe))
  )");
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(git(f.origin, "rev-parse main"), f.sha("HEAD"));

  // The other clone pushes on top: the remote moves, and we have not fetched since.
  git(other, "merge -q --ff-only origin/main");
  write_file(other + "/theirs.py", "theirs\n");
  Fixture::commit(other, "their change");
  git(other, "push -q origin main");
  std::string theirs = git(other, "rev-parse HEAD");

  // We rewrite our last commit and try to force it: the lease does not hold.
  git(f.work, "commit -q --amend -m 'fix 1, reworded'");
  auto refused =
      step(f.dir.path(), run.path(), "git.push{ repo = W, refspec = 'main', force = true }");
  EXPECT_NE(
      err_of(refused).find("git.push: refs/heads/main on origin is at " + theirs.substr(0, 7)),
      std::string::npos)
      << err_of(refused);
  EXPECT_NE(err_of(refused).find("someone pushed since"), std::string::npos) << err_of(refused);
  EXPECT_EQ(git(f.origin, "rev-parse main"), theirs);

  // A plain push of a diverged branch is refused too.
  auto plain = step(f.dir.path(), run.path(), "git.push{ repo = W }");
  EXPECT_NE(err_of(plain).find("fetch first"), std::string::npos) << err_of(plain);
  EXPECT_EQ(git(f.origin, "rev-parse main"), theirs);

  // After a fetch we have seen their commit; forcing over it is now a decision, and the lease
  // holds.
  auto forced = step(f.dir.path(), run.path(), R"(
    git.fetch{ repo = W }
    local pu = git.push{ repo = W, refspec = "main", force = true }
    assert(pu.forced and pu.from == ")" + theirs + R"(" and pu.lease == pu.from, json.encode(pu))
  )");
  ASSERT_EQ(forced.result.exit_code, 0) << err_of(forced);
  EXPECT_EQ(git(f.origin, "rev-parse main"), f.sha("HEAD"));
  EXPECT_EQ(git(f.work, "rev-parse origin/main"), f.sha("HEAD"));
  EXPECT_EQ(verify_effect("git.push", {{"repo", f.work}, {"refspec", "main"}}), true);

  // Pushing a tag, and an unknown remote.
  auto t = step(f.dir.path(), run.path(), R"(
    git.tag{ repo = W, name = "rollback-1" }
    local pu = git.push{ repo = W, refspec = "rollback-1" }
    assert(pu.ref == "refs/tags/rollback-1", pu.ref)
    git.tag{ repo = W, name = "rollback-2", message = "annotated" }
    local tags = git.push{ repo = W, tags = true }
    assert(json.encode(tags.pushed) == '["rollback-2"]', json.encode(tags))
    assert(#git.push{ repo = W, tags = true }.pushed == 0)
    local ok, err = pcall(git.fetch, { repo = W, remote = "upstream" })
    assert(not ok and tostring(err):find("no remote 'upstream'"), tostring(err))
  )");
  EXPECT_EQ(t.result.exit_code, 0) << err_of(t);
  EXPECT_EQ(git(f.origin, "rev-parse rollback-1"), f.sha("HEAD"));
  EXPECT_EQ(git(f.origin, "cat-file -t rollback-2"), "tag");

  // A tag the remote has at another commit is never moved by a tags push.
  git(f.work, "tag -f rollback-1 v1.0.0");
  auto moved = step(f.dir.path(), run.path(), "git.push{ repo = W, tags = true }");
  EXPECT_NE(err_of(moved).find("git.push: tags differ on the remote (never moved): rollback-1"),
            std::string::npos)
      << err_of(moved);
  EXPECT_EQ(git(f.origin, "rev-parse rollback-1"), f.sha("HEAD"));
}

TEST(GitRemote, AnUnreachableHostFailsPromptly) {
  Fixture f;
  TempDir run;
  int port = free_port();  // nothing listens there
  git(f.work, "remote add dead http://127.0.0.1:" + std::to_string(port) + "/repo.git");
  auto t0 = std::chrono::steady_clock::now();
  auto r = step(f.dir.path(), run.path(), "git.fetch{ repo = W, remote = 'dead', timeout = '2s' }");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_NE(err_of(r).find("git.fetch: cannot reach 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << err_of(r);
}

TEST(GitDryRun, EveryChangeIsPreviewedAndNothingChanges) {
  Fixture f;
  std::string other = f.dir / "other";
  sh("git clone -q '" + f.origin + "' '" + other + "'");
  write_file(other + "/o.py", "o\n");
  Fixture::configure(other);
  Fixture::commit(other, "o");
  git(other, "push -q origin main");
  write_file(f.work + "/config.ini", "a=hand-tuned\n");
  write_file(f.work + "/legacy.txt", "in the way\n");
  write_file(f.work + "/stray/file.txt", "stray\n");
  std::string before = sha256_tree(f.dir.path());
  std::string head = f.sha("HEAD");
  // Each change alone, previewed against the world as it is (one after another they would be
  // previewed against what the earlier ones are predicted to make: tests/predict_git_test.cc).
  auto dry = [&](const std::string& body, int exit_code = 0) {
    TempDir run;
    auto r = step(f.dir.path(), run.path(), body, Mode::DryRun);
    EXPECT_EQ(r.result.exit_code, exit_code) << body << ": " << err_of(r);
    EXPECT_EQ(sha256_tree(f.dir.path()), before) << "a dry run changed the repositories: " << body;
    EXPECT_EQ(f.sha("HEAD"), head);
    for (const auto& e : r.events.effects) {
      if (e.kind == Kind::Change && exit_code == 0) {
        EXPECT_EQ(e.status, "planned") << e.name;
      }
    }
    return r;
  };
  std::string h7 = head.substr(0, 7), v2 = f.sha("v2.0.0").substr(0, 7),
              v1 = f.sha("v1.0.0").substr(0, 7);

  auto r = dry(R"(
    local t = git.tag{ repo = W, name = "emergency-backup" }
    assert(t.commit == git.head(W).commit, "planned results carry the real commit")
    git.branch{ repo = W, name = "backup/x" }
  )");
  EXPECT_EQ(preview_text(event(r, "git.tag")), "tag emergency-backup → " + h7 + " (v2.0.1)");
  r = dry(R"(
    local s = git.stash{ repo = W, message = "m" }
    assert(s.stashed == true)
  )");
  r = dry(R"(
    local c = git.checkout{ repo = W, ref = "v2.0.0" }
  )",
          1);
  EXPECT_NE(err_of(r).find("the live run would fail here: uncommitted changes to config.ini; "
                           "commit them, or pass stash = true to stash them first"),
            std::string::npos)
      << err_of(r);
  r = dry(R"(
    local c = git.checkout{ repo = W, ref = "v2.0.0", stash = true }
    assert(c.commit == git.rev_parse(W, "v2.0.0") and c.files == 1, json.encode(c))
  )");
  EXPECT_EQ(preview_text(event(r, "git.checkout")),
            "HEAD " + h7 + " (v2.0.1) → " + v2 +
                " (v2.0.0), 1 file changes; stashes uncommitted changes to config.ini first");
  r = dry(R"(git.checkout{ repo = W, ref = "v1.0.0", paths = { "app.py" } })");
  EXPECT_EQ(preview_text(event(r, "git.checkout")),
            "restores 1 file from " + v1 + " (v1.0.0): app.py");
  r = dry(R"(
    local rs = git.reset{ repo = W, ref = "v1.0.0", hard = true }
    assert(rs.commit == git.rev_parse(W, "v1.0.0") and rs.moved[1] == "legacy.txt", json.encode(rs))
  )");
  std::string reset = preview_text(event(r, "git.reset"));
  EXPECT_EQ(reset.find("HEAD " + h7 + " (v2.0.1) → " + v1 +
                       " (v1.0.0), 3 files change; backs up HEAD to "
                       "refs/runbook/backup/"),
            0u)
      << reset;
  EXPECT_NE(reset.find("uncommitted changes to config.ini to refs/runbook/backup/"),
            std::string::npos)
      << reset;
  EXPECT_NE(reset.find("moves untracked legacy.txt (in the way) to the run's artifacts"),
            std::string::npos)
      << reset;
  r = dry(R"(git.revert{ repo = W, commit = "v2.0.0..v2.0.1" })", 1);
  EXPECT_NE(err_of(r).find("the live run would fail here: uncommitted changes to config.ini"),
            std::string::npos)
      << err_of(r);
  r = dry(R"(
    local cl = git.clean{ repo = W, ignored = true }
    assert(cl.count == 2, json.encode(cl))
  )");
  EXPECT_NE(preview_text(event(r, "git.clean"))
                .find("moves 2 paths to the run's artifacts: legacy.txt, stray/file.txt"),
            std::string::npos)
      << preview_text(event(r, "git.clean"));
  r = dry(R"(
    local fe = git.fetch{ repo = W }
    assert(#fe.updated == 1, json.encode(fe))
  )");
  EXPECT_NE(preview_text(event(r, "git.fetch"))
                .find("updates 1 ref from origin: refs/remotes/origin/main"),
            std::string::npos)
      << preview_text(event(r, "git.fetch"));
  r = dry(R"(git.push{ repo = W, refspec = "main", force = true })", 1);
  EXPECT_NE(err_of(r).find("the live run would fail here: refs/heads/main on origin is at"),
            std::string::npos)
      << err_of(r);
}

TEST(GitDryRun, RevertPreviewFindsAConflictWithoutWritingObjects) {
  Fixture f;
  TempDir run, run2;
  std::string before = sha256_tree(f.dir.path());
  auto r = step(f.dir.path(), run.path(), R"(
    git.revert{ repo = W, commit = "v2.0.0" }
  )",
                Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_EQ(sha256_tree(f.dir.path()), before);
  EXPECT_NE(err_of(r).find("the live run would fail here: reverting"), std::string::npos)
      << err_of(r);
  EXPECT_NE(err_of(r).find("conflicts in app.py"), std::string::npos) << err_of(r);
  r = step(f.dir.path(), run2.path(), R"(
    git.revert{ repo = W, commit = "v2.0.1" }
  )",
           Mode::DryRun);
  ASSERT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sha256_tree(f.dir.path()), before);
  std::string ok = preview_text(event(r, "git.revert", 0));
  EXPECT_NE(ok.find("as 1 new commit, 1 file changes"), std::string::npos) << ok;
}
