// Dry-run predictions of pip.* and npm.* (issue 9): a planned pin/restore/install/ci states the
// versions it leaves, later pip.versions / npm.versions in the same rehearsal answer from them
// (state "predicted"), a preview that finds the live call would fail ends the dry-run there, and
// the previews carry the versions they replace as their basis. Offline, as pkg_test: wheels
// written by support/pkg_wheels.py into a find-links directory, npm tarballs from `npm pack`.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "core/unknown.h"
#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

// Runs `body` as one step in `run_dir` (journal at run_dir/journal.db); every entry of `params`
// is a string parameter p.<name>.
LuaRun step(const std::string& run_dir, const std::string& body,
            const std::map<std::string, std::string>& params, Mode mode) {
  std::string decl;
  for (const auto& [k, _] : params) decl += k + " = { type = 'string' }, ";
  std::string code = "runbook { name = 'predict-pkg', version = '1.0.0', params = { " + decl +
                     "} }\nstep('s', function(p)\n" + body + "\nend)\n";
  return run_lua(run_dir, code, mode, params);
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

const EffectEvent* event(const LuaRun& r, const std::string& name, int nth = 0) {
  for (const auto& e : r.events.effects)
    if (e.name == name && nth-- == 0) return &e;
  return nullptr;
}

// The journaled states of the run's effects named `name`, in order.
std::vector<std::string> journal_states(const std::string& run_dir, int64_t run_id,
                                        const std::string& name) {
  Journal j(run_dir + "/journal.db");
  std::vector<std::string> out;
  for (const auto& e : j.effects(run_id))
    if (e.name == name) out.push_back(e.state);
  return out;
}

std::string sh(const std::vector<std::string>& argv, const std::string& cwd = "") {
  std::string cmd = cwd.empty() ? "" : "cd '" + cwd + "' && ";
  for (const auto& a : argv) cmd += "'" + a + "' ";
  cmd += "2>&1";
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  return out;
}

const char* kWouldFail = "the live run would fail here: ";

// ---------------------------------------------------------------------------------------------
// pip

class PipPredict : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> root_;
  static inline std::string venv_, wheels_, site_;

  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>();
    wheels_ = *root_ / "wheels";
    venv_ = *root_ / "venv";
    stdfs::create_directories(wheels_);
    sh({"python3", RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py", wheels_});
    sh({"python3", "-m", "venv", venv_});
    sh({venv_ + "/bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels_,
        "rb-schema==4.25.0", "Rb_Core==2.37.2"});
    for (const auto& e : stdfs::directory_iterator(venv_ + "/lib"))
      site_ = e.path().string() + "/site-packages";
    stdfs::create_directories(pristine());
    for (const auto& e : stdfs::directory_iterator(site_))
      if (ours(e.path()))
        stdfs::copy(e.path(), pristine() + "/" + e.path().filename().string(),
                    stdfs::copy_options::recursive);
  }
  static void TearDownTestSuite() { root_.reset(); }
  static std::string pristine() { return *root_ / "pristine"; }
  static bool ours(const stdfs::path& p) {
    std::string n = p.filename().string();
    return n.rfind("rb_", 0) == 0 || n.rfind("Rb_", 0) == 0;
  }
  // Every test starts from rb-schema 4.25.0 and Rb_Core 2.37.2 (as pkg_test does).
  void SetUp() override {
    for (const auto& e : stdfs::directory_iterator(site_))
      if (ours(e.path())) stdfs::remove_all(e.path());
    for (const auto& e : stdfs::directory_iterator(pristine()))
      stdfs::copy(e.path(), site_ + "/" + e.path().filename().string(),
                  stdfs::copy_options::recursive);
  }
  LuaRun run(const TempDir& d, const std::string& body, Mode mode) {
    return step(d.path(), body, {{"venv", venv_}, {"wheels", wheels_}, {"dir", d.path()}}, mode);
  }
  // The dist-info directories of the venv: what a pin changes.
  static std::string dist_infos() {
    std::string out;
    for (const auto& e : stdfs::directory_iterator(site_))
      if (e.path().extension() == ".dist-info") out += e.path().filename().string() + "\n";
    return out;
  }
};

const char* kPinThenCheck = R"(
    local r = pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" },
                       find_links = p.wheels, no_index = true }
    local v = pip.versions{ venv = p.venv }
    assert(v["rb-schema"] == "4.23.0", "rb-schema is " .. tostring(v["rb-schema"]))
    assert(v.rb_core == "2.37.2", "rb_core is " .. tostring(v.rb_core))
    local only = pip.versions{ venv = p.venv, packages = { "RB_Schema" } }
    assert(only.RB_Schema == "4.23.0", json.encode(only))
)";

TEST_F(PipPredict, ADryRunPinThenAVersionCheckPassesOnThePredictedVersion) {
  TempDir d;
  std::string tree = sha256_tree(venv_), infos = dist_infos();
  auto r = run(d, kPinThenCheck, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  const EffectEvent* v = event(r, "pip.versions");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->status, "predicted");
  EXPECT_EQ(v->result.value("rb-schema", ""), "4.23.0") << v->result.dump();
  EXPECT_EQ(journal_states(d.path(), r.result.run_id, "pip.versions"),
            (std::vector<std::string>{"predicted", "predicted"}));
  // The basis: the version the pin replaces, as it is now.
  const EffectEvent* pin = event(r, "pip.pin");
  ASSERT_NE(pin, nullptr);
  EXPECT_EQ(pin->preview["basis"]["versions"], (json{{"rb-schema", "4.25.0"}}))
      << pin->preview.dump();
  // A rehearsal changes nothing.
  EXPECT_EQ(dist_infos(), infos);
  EXPECT_EQ(sha256_tree(venv_), tree);
  EXPECT_NE(infos.find("rb_schema-4.25.0.dist-info"), std::string::npos) << infos;

  // And the same runbook passes live.
  TempDir live;
  auto l = run(live, kPinThenCheck, Mode::Live);
  EXPECT_EQ(l.result.exit_code, kExitOk) << err_of(l);
  EXPECT_NE(dist_infos().find("rb_schema-4.23.0.dist-info"), std::string::npos) << dist_infos();
}

TEST_F(PipPredict, AVerificationContradictingThePredictionFailsTheDryRun) {
  TempDir d;
  auto r = run(d, R"(
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    -- the world before the pin: no longer what the rehearsal answers
    assert(pip.versions{ venv = p.venv }["rb-schema"] == "4.25.0", "still 4.25.0 expected")
  )",
               Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(r).find("still 4.25.0 expected"), std::string::npos) << err_of(r);
}

TEST_F(PipPredict, AProbeOfAVenvNoPlannedChangeTouchedIsPerformed) {
  TempDir d;
  auto r2 = run(d, "assert(pip.versions{ venv = p.venv }['rb-schema'] == '4.25.0')", Mode::DryRun);
  EXPECT_EQ(r2.result.exit_code, kExitOk) << err_of(r2);
  ASSERT_NE(event(r2, "pip.versions"), nullptr);
  EXPECT_EQ(event(r2, "pip.versions")->status, "ok");
}

TEST_F(PipPredict, RestoreAndPrunePredictTheSnapshotAndInstallTheExactPins) {
  TempDir d;
  write_file(d / "snapshot.txt", "rb-schema==4.23.0\nRb_Core==2.33.2\n");
  write_file(d / "req.txt", "rb-extra==1.0.0\n");
  auto r = run(d, R"(
    pip.install{ venv = p.venv, requirements = p.dir .. "/req.txt", find_links = p.wheels, no_index = true }
    assert(pip.versions{ venv = p.venv }["rb-extra"] == "1.0.0")
    pip.restore{ venv = p.venv, snapshot = p.dir .. "/snapshot.txt", prune = true,
                 find_links = p.wheels, no_index = true }
    local v = pip.versions{ venv = p.venv }
    assert(v["rb-schema"] == "4.23.0" and v.rb_core == "2.33.2", json.encode(v))
    assert(v["rb-extra"] == nil, "pruned: " .. json.encode(v))
    assert(v.pip ~= nil, "pip itself is never pruned")
    local f = pip.freeze{ venv = p.venv }
    assert(f.count == 2 and f.packages["rb-schema"] == "4.23.0", json.encode(f))
  )",
               Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  const EffectEvent* restore = event(r, "pip.restore");
  ASSERT_NE(restore, nullptr);
  // Its basis is the venv as the install before it leaves it, and the snapshot's content.
  json basis = restore->preview["basis"];
  EXPECT_EQ(basis["versions"]["rb-extra"], "1.0.0") << basis.dump();
  EXPECT_EQ(basis["versions"]["rb-schema"], "4.25.0") << basis.dump();
  EXPECT_EQ(basis["snapshot_sha256"].get<std::string>().size(), 64u) << basis.dump();
  EXPECT_EQ(event(r, "pip.freeze")->status, "predicted");
}

TEST_F(PipPredict, AFreezeIntoAFileThenARestoreFromItIsPredicted) {
  TempDir d;
  auto r = run(d, R"(
    pip.freeze{ venv = p.venv, to = p.dir .. "/before.txt" }
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    pip.restore{ venv = p.venv, snapshot = p.dir .. "/before.txt", find_links = p.wheels, no_index = true }
    assert(pip.versions{ venv = p.venv }["rb-schema"] == "4.25.0")
  )",
               Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  EXPECT_FALSE(stdfs::exists(d / "before.txt"));
}

TEST_F(PipPredict, ARestoreFromASnapshotTheRunTakesLiveGivesUnknownVersions) {
  TempDir d;
  auto r = run(d, R"(
    local r = pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    pip.restore{ venv = p.venv, snapshot = r.snapshot, find_links = p.wheels, no_index = true }
    pip.versions{ venv = p.venv }
    pip.versions{ venv = p.venv, packages = { "rb-schema" } }
    pip.check{ venv = p.venv }
  )",
               Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  const EffectEvent* all = event(r, "pip.versions", 0);
  const EffectEvent* one = event(r, "pip.versions", 1);
  const EffectEvent* check = event(r, "pip.check");
  ASSERT_TRUE(all && one && check);
  EXPECT_EQ(all->status, "predicted");
  EXPECT_TRUE(is_unknown(all->result)) << all->result.dump();
  EXPECT_NE(unknown_why(all->result).find("pip.restore"), std::string::npos) << all->result.dump();
  EXPECT_TRUE(is_unknown(one->result["rb-schema"])) << one->result.dump();
  EXPECT_TRUE(is_unknown(check->result)) << check->result.dump();
}

TEST_F(PipPredict, PreviewsFailTheDryRunWhereTheLiveCallWould) {
  TempDir d;
  struct Case {
    const char* body;
    std::string message;
  };
  std::vector<Case> cases = {
      {"pip.pin{ venv = p.dir .. '/nope', packages = { x = '1.0' } }",
       "no virtualenv at " + d.path() + "/nope (" + d.path() + "/nope/bin/python is missing)"},
      {"pip.restore{ venv = p.venv, snapshot = p.dir .. '/gone.txt' }",
       "snapshot " + d.path() + "/gone.txt does not exist"},
      {"pip.pin{ venv = p.venv, packages = { ['rb-schema'] = '9.9.9' }, find_links = p.wheels, "
       "no_index = true }",
       "no rb-schema==9.9.9 in find_links " + wheels_},
      {"pip.install{ venv = p.venv, requirements = p.dir .. '/missing.txt' }", "does not exist"},
      {"pip.freeze{ venv = p.dir .. '/nope', to = p.dir .. '/f.txt' }", "no virtualenv at "},
  };
  for (const auto& c : cases) {
    TempDir run_dir;
    auto r = step(run_dir.path(), std::string(c.body) + "\nlog.info('after')",
                  {{"venv", venv_}, {"wheels", wheels_}, {"dir", d.path()}}, Mode::DryRun);
    EXPECT_EQ(r.result.exit_code, kExitFailed) << c.body;
    EXPECT_NE(err_of(r).find(kWouldFail), std::string::npos) << c.body << "\n" << err_of(r);
    EXPECT_NE(err_of(r).find(c.message), std::string::npos) << c.body << "\n" << err_of(r);
    EXPECT_FALSE(r.events.logged("after")) << c.body;
  }
  // What the live call accepts is not refused: a version find_links has, a venv a planned
  // pip.venv creates.
  TempDir ok;
  auto r = step(ok.path(), R"(
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    pip.venv{ path = p.dir .. "/fresh" }
    pip.pin{ venv = p.dir .. "/fresh", packages = { ["rb-extra"] = "1.0.0" }, find_links = p.wheels, no_index = true }
    local v = pip.versions{ venv = p.dir .. "/fresh" }
    assert(v["rb-extra"] == "1.0.0" and v["rb-schema"] == nil, json.encode(v))
  )",
                {{"venv", venv_}, {"wheels", wheels_}, {"dir", ok.path()}}, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  EXPECT_FALSE(stdfs::exists(ok / "fresh"));
}

// ---------------------------------------------------------------------------------------------
// npm

class NpmPredict : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> root_;
  static inline std::string tgz1_, tgz2_;

  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>();
    ::setenv("npm_config_cache", (*root_ / "npm-cache").c_str(), 1);
    ::setenv("npm_config_update_notifier", "false", 1);
    for (const char* v : {"1.0.0", "2.0.0"}) {
      std::string src = *root_ / (std::string("src-") + v);
      write_file(src + "/package.json", std::string(R"({"name":"@rb/left-thing","version":")") + v +
                                            R"(","main":"index.js"})");
      write_file(src + "/index.js", std::string("module.exports = '") + v + "';\n");
      sh({"npm", "pack", "--silent", "--pack-destination", root_->path()}, src);
    }
    tgz1_ = *root_ / "rb-left-thing-1.0.0.tgz";
    tgz2_ = *root_ / "rb-left-thing-2.0.0.tgz";
  }
  static void TearDownTestSuite() { root_.reset(); }

  std::string project(const TempDir& d) {
    std::string dir = d / "app";
    write_file(dir + "/package.json", R"({ "name": "app", "version": "0.1.0", "private": true })");
    sh({"npm", "install", "--no-audit", "--no-fund", "--silent", "--save-exact", tgz1_}, dir);
    return dir;
  }
};

const char* kNpmPinThenCheck = R"(
    npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = "file:" .. p.tgz2 } }
    local v = npm.versions{ dir = p.dir }
    assert(v["@rb/left-thing"] == "2.0.0", "left-thing is " .. tostring(v["@rb/left-thing"]))
)";

TEST_F(NpmPredict, ADryRunPinThenAVersionCheckPassesOnThePredictedVersion) {
  TempDir d;
  std::string dir = project(d);
  std::string tree = sha256_tree(dir);
  TempDir run_dir;
  auto r = step(run_dir.path(), kNpmPinThenCheck, {{"dir", dir}, {"tgz2", tgz2_}}, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  const EffectEvent* v = event(r, "npm.versions");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->status, "predicted");
  EXPECT_EQ(journal_states(run_dir.path(), r.result.run_id, "npm.versions"),
            std::vector<std::string>{"predicted"});
  EXPECT_EQ(event(r, "npm.pin")->preview["basis"]["versions"], (json{{"@rb/left-thing", "1.0.0"}}));
  EXPECT_EQ(sha256_tree(dir), tree) << "a dry-run changed the project";

  auto wrong = step(run_dir.path(), R"(
    npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = "file:" .. p.tgz2 } }
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "1.0.0", "still 1.0.0 expected")
  )",
                    {{"dir", dir}, {"tgz2", tgz2_}}, Mode::DryRun);
  EXPECT_EQ(wrong.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(wrong).find("still 1.0.0 expected"), std::string::npos) << err_of(wrong);

  TempDir live;
  auto l = step(live.path(), kNpmPinThenCheck, {{"dir", dir}, {"tgz2", tgz2_}}, Mode::Live);
  EXPECT_EQ(l.result.exit_code, kExitOk) << err_of(l);
}

TEST_F(NpmPredict, CiAndInstallPredictTheLockfilesVersions) {
  TempDir d;
  std::string dir = project(d);
  // node_modules drifted from the lockfile: ci and install bring back what it locks.
  write_file(dir + "/node_modules/@rb/left-thing/package.json",
             R"({"name":"@rb/left-thing","version":"0.9.0"})");
  write_file(dir + "/node_modules/stray/package.json", R"({"name":"stray","version":"3.0.0"})");
  TempDir run_dir;
  auto r = step(run_dir.path(), R"(
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "0.9.0")
    npm.ci{ dir = p.dir }
    local v = npm.versions{ dir = p.dir }
    assert(v["@rb/left-thing"] == "1.0.0" and v.stray == nil, json.encode(v))
    npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = "file:" .. p.tgz2 } }
    npm.install{ dir = p.dir }
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "2.0.0")
  )",
                {{"dir", dir}, {"tgz2", tgz2_}}, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, kExitOk) << err_of(r);
  const EffectEvent* ci = event(r, "npm.ci");
  ASSERT_NE(ci, nullptr);
  EXPECT_EQ(ci->preview["basis"]["lockfile_sha256"].get<std::string>().size(), 64u);
  // After the planned pin the lockfile is rewritten: install's basis cannot name its digest.
  const EffectEvent* install = event(r, "npm.install");
  ASSERT_NE(install, nullptr);
  EXPECT_TRUE(is_unknown(install->preview["basis"]["lockfile_sha256"])) << install->preview.dump();
}

TEST_F(NpmPredict, PreviewsFailTheDryRunWhereTheLiveCallWould) {
  TempDir d;
  std::string dir = project(d);
  std::string bare = d / "bare";
  stdfs::create_directories(bare);
  std::string nolock = d / "nolock";
  write_file(nolock + "/package.json", R"({ "name": "x", "version": "1.0.0" })");
  struct Case {
    std::string body, message;
  };
  std::vector<Case> cases = {
      {"npm.ci{ dir = p.bare }", "no package.json in " + bare},
      {"npm.ci{ dir = p.nolock }", "no package-lock.json in " + nolock + " (npm ci needs one)"},
      {"npm.install{ dir = p.bare }", "no package.json in " + bare},
      {"npm.pin{ dir = p.dir, packages = { ['@rb/left-thing'] = p.dir .. '/none-1.0.0.tgz' } }",
       "the tarball for @rb/left-thing does not exist: " + dir + "/none-1.0.0.tgz"},
  };
  for (const auto& c : cases) {
    TempDir run_dir;
    auto r = step(run_dir.path(), c.body + "\nlog.info('after')",
                  {{"dir", dir}, {"bare", bare}, {"nolock", nolock}}, Mode::DryRun);
    EXPECT_EQ(r.result.exit_code, kExitFailed) << c.body;
    EXPECT_NE(err_of(r).find(kWouldFail), std::string::npos) << c.body << "\n" << err_of(r);
    EXPECT_NE(err_of(r).find(c.message), std::string::npos) << c.body << "\n" << err_of(r);
    EXPECT_FALSE(r.events.logged("after")) << c.body;
  }
}

}  // namespace
