// pip.* and npm.* for real, without a network: wheels written by hand into a find-links
// directory (support/pkg_wheels.py) and installed into a real venv with no_index; npm tarballs
// made with `npm pack` and installed as file: specs, with npm's cache in a temp dir.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "dispatch/context.h"
#include "dispatch/registry.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

// Runs `body` as one step; every entry of `params` is a string parameter p.<name>.
LuaRun step(const std::string& body, const std::map<std::string, std::string>& params,
            Mode mode = Mode::Live, const std::string& run_dir = "") {
  std::string decl;
  for (const auto& [k, _] : params) decl += k + " = { type = 'string' }, ";
  std::string code = "runbook { name = 'pkg', version = '1.0.0', params = { " + decl + "} }\n" +
                     "step('s', function(p)\n" + body + "\nend)\n";
  if (!run_dir.empty()) return run_lua(run_dir, code, mode, params);
  TempDir d;
  return run_lua(d.path(), code, mode, params);
}

std::string err_of(const LuaRun& r) {
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors[0];
}

std::string preview_text(const EffectEvent& e) {
  if (e.preview.is_string()) return e.preview.get<std::string>();
  if (e.preview.is_object() && e.preview.contains("text"))
    return e.preview["text"].get<std::string>();
  return "";
}

const EffectEvent* event(const LuaRun& r, const std::string& name) {
  for (const auto& e : r.events.effects)
    if (e.name == name) return &e;
  return nullptr;
}

// Runs argv, failing the test if it exits non-zero; returns stdout.
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

// ---------------------------------------------------------------------------------------------
// pip

class Pip : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> root_;
  static inline std::string venv_, wheels_, site_;

  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>();
    wheels_ = *root_ / "wheels";
    venv_ = *root_ / "venv";
    stdfs::create_directories(wheels_);
    sh({"python3", RUNBOOK_TEST_SUPPORT_DIR "/pkg_wheels.py", wheels_});
    // The stdlib venv bundles pip (ensurepip), so this needs no network either.
    sh({"python3", "-m", "venv", venv_});
    install({"rb-schema==4.25.0", "Rb_Core==2.37.2"});
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

  // Every test starts from rb-schema 4.25.0 and Rb_Core 2.37.2, nothing else of ours: the test
  // packages' files are put back as they were after the first install (much faster than pip;
  // the tests touch nothing else of the venv, as the dry-run test's checksum shows).
  void SetUp() override {
    for (const auto& e : stdfs::directory_iterator(site_))
      if (ours(e.path())) stdfs::remove_all(e.path());
    for (const auto& e : stdfs::directory_iterator(pristine()))
      stdfs::copy(e.path(), site_ + "/" + e.path().filename().string(),
                  stdfs::copy_options::recursive);
  }

  static void install(const std::vector<std::string>& reqs) {
    std::vector<std::string> argv = {venv_ + "/bin/python", "-m",           "pip",  "install", "-q",
                                     "--no-index",          "--find-links", wheels_};
    argv.insert(argv.end(), reqs.begin(), reqs.end());
    sh(argv);
  }

  LuaRun run(const std::string& body, Mode mode = Mode::Live, const std::string& run_dir = "") {
    return step(body, {{"venv", venv_}, {"wheels", wheels_}, {"tmp", root_->path()}}, mode,
                run_dir);
  }
};

TEST_F(Pip, VersionsAreReadWithNormalizedNamesAndTheGivenSpelling) {
  auto r = run(R"(
    local v = pip.versions{ venv = p.venv }
    assert(v["rb-schema"] == "4.25.0", json.encode(v))
    -- PEP 503: one project, whichever way it is spelled
    assert(v["rb-core"] == "2.37.2" and v.rb_core == "2.37.2" and v.Rb_Core == "2.37.2", json.encode(v))
    assert(v.pip ~= nil)
    local only = pip.versions{ venv = p.venv, packages = { "RB.Core", "rb_schema", "not-there" } }
    assert(only["RB.Core"] == "2.37.2" and only.rb_schema == "4.25.0", json.encode(only))
    assert(only["not-there"] == nil)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST_F(Pip, PinMovesBetweenVersionsForRealKeepsASnapshotAndRestoresIt) {
  auto r = run(R"(
    local r = pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0", rb_core = "2.33.2" },
                       find_links = p.wheels, no_index = true }
    assert(r.changed["rb-schema"].from == "4.25.0" and r.changed["rb-schema"].to == "4.23.0", json.encode(r))
    assert(r.changed.rb_core.from == "2.37.2" and r.changed.rb_core.to == "2.33.2", json.encode(r))
    local v = pip.versions{ venv = p.venv }
    assert(v["rb-schema"] == "4.23.0" and v.rb_core == "2.33.2", json.encode(v))
    -- the snapshot was taken before: it holds the old versions
    local snap = fs.read(r.snapshot)
    assert(snap:find("rb%-schema==4%.25%.0") and snap:find("Rb_Core==2%.37%.2"), snap)

    -- asking again changes nothing; "4.23" is the same release as 4.23.0
    local again = pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23" }, find_links = p.wheels, no_index = true }
    assert(next(again.changed) == nil and again.unchanged["rb-schema"] == "4.23.0", json.encode(again))

    local back = pip.restore{ venv = p.venv, snapshot = r.snapshot, find_links = p.wheels, no_index = true }
    v = pip.versions{ venv = p.venv }
    assert(v["rb-schema"] == "4.25.0" and v.rb_core == "2.37.2", json.encode(v))
    assert(back.changed["rb-schema"].to == "4.25.0", json.encode(back))
    assert(fs.read(back.snapshot):find("rb%-schema==4%.23%.0"), "restore keeps the state it replaced")
    assert(pip.check{ venv = p.venv }.ok == true)
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* pin = event(r, "pip.pin");
  ASSERT_NE(pin, nullptr);
  EXPECT_EQ(pin->status, "ok");
}

TEST_F(Pip, VerifyTellsFromTheVenvWhetherAPinTookPlace) {
  json args{{"venv", venv_}, {"packages", {{"rb-schema", "4.23.0"}, {"rb_core", "2.37.2"}}}};
  EXPECT_EQ(verify_effect("pip.pin", args), false);
  install({"rb-schema==4.23.0"});
  EXPECT_EQ(verify_effect("pip.pin", args), true);
  EXPECT_EQ(verify_effect("pip.pin", json{{"venv", venv_ + "/gone"}, {"packages", {{"x", "1"}}}}), false);
}

TEST_F(Pip, DryRunPreviewsWithVersionsAndLeavesTheVenvByteIdentical) {
  TempDir d;
  write_file(d / "snapshot.txt", "rb-schema==4.23.0\nRb_Core==2.37.2\nrb-extra==1.0.0\n");
  write_file(d / "requirements.txt", "rb-schema==4.23.0\nrb-app\n");
  std::string before = sha256_tree(venv_);
  auto r = step(R"(
    -- probes do run in a dry-run (before any planned change: after one they are predicted), and
    -- must not write either (no __pycache__ from importing pip)
    assert(pip.check{ venv = p.venv }.ok)
    assert(pip.versions{ venv = p.venv }["rb-schema"] == "4.25.0")
    pip.freeze{ venv = p.venv }
    local r = pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0", rb_core = "2.37.2", ["rb-extra"] = "1.0.0" },
                       find_links = p.wheels, no_index = true }
    assert(r.planned and r.changed["rb-schema"].to == "4.23.0" and r.unchanged.rb_core == "2.37.2", json.encode(r))
    pip.restore{ venv = p.venv, snapshot = p.dir .. "/snapshot.txt", prune = true, no_index = true }
    pip.restore{ venv = p.venv, snapshot = r.snapshot }
    pip.install{ venv = p.venv, requirements = p.dir .. "/requirements.txt", no_index = true }
    pip.freeze{ venv = p.venv, to = p.dir .. "/frozen.txt" }
    pip.venv{ path = p.venv, clear = true }
  )",
                {{"venv", venv_}, {"wheels", wheels_}, {"dir", d.path()}}, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sha256_tree(venv_), before) << "a dry-run changed the venv";
  EXPECT_FALSE(stdfs::exists(d / "frozen.txt"));

  ASSERT_GE(r.events.effects.size(), 9u);
  EXPECT_EQ(r.events.effects[0].status, "ok");  // the probes before any change: performed
  const EffectEvent* e = &r.events.effects[3];
  EXPECT_EQ(preview_text(e[0]),
            "rb-extra not installed → 1.0.0, rb-schema 4.25.0 → 4.23.0, rb_core already at 2.37.2");
  // Previews see the venv as the planned changes before them leave it.
  EXPECT_EQ(preview_text(e[1]), "already matches the snapshot (3 packages)");
  EXPECT_NE(preview_text(e[2]).find("the snapshot is taken when the run is live"),
            std::string::npos)
      << preview_text(e[2]);
  // After a restore from a snapshot only the live run takes, the versions are unknown.
  EXPECT_EQ(preview_text(e[3]),
            "2 requirements: rb-schema unknown → 4.23.0; 1 not pinned with == (pip decides)");
  EXPECT_NE(preview_text(e[4]).find("writes "), std::string::npos);
  EXPECT_NE(preview_text(e[5]).find("replaces the virtualenv at " + venv_ + " (Python 3."),
            std::string::npos)
      << preview_text(e[5]);
}

TEST_F(Pip, PinFailsNamingThePackagesNotAtTheAskedVersion) {
  // rb-clobber installs fine but leaves Rb_Core's metadata saying 2.37.3.
  auto r = run(R"(
    pip.pin{ venv = p.venv, packages = { rb_core = "2.37.2", ["rb-clobber"] = "1.0.0", ["rb-schema"] = "4.23.0" },
             find_links = p.wheels, no_index = true }
  )");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(r).find("pip.pin: rb_core is 2.37.3 after install, expected 2.37.2"),
            std::string::npos)
      << err_of(r);
  EXPECT_EQ(err_of(r).find("rb-schema is"), std::string::npos)
      << "only the wrong ones are named: " << err_of(r);

  // A version no index has: pip's own reason, named after the effect; nothing changes.
  std::string before = sha256_tree(venv_);
  auto r2 = run(R"(
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "9.9.9" }, find_links = p.wheels, no_index = true }
  )");
  EXPECT_NE(err_of(r2).find("pip.pin: "), std::string::npos) << err_of(r2);
  EXPECT_NE(err_of(r2).find("rb-schema==9.9.9"), std::string::npos) << err_of(r2);
  EXPECT_EQ(sha256_tree(venv_), before);
}

TEST_F(Pip, CheckReportsBrokenRequirements) {
  install({"rb-app==1.0.0"});  // requires rb-schema>=4.25
  auto r = run(R"(
    assert(pip.check{ venv = p.venv }.ok)
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    local c = pip.check{ venv = p.venv, check = false }
    assert(c.ok == false and #c.problems == 1, json.encode(c))
    assert(c.problems[1]:find("rb%-app 1%.0%.0 has requirement rb%-schema>=4%.25"), c.problems[1])
    pip.check{ venv = p.venv }
  )");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(err_of(r).find(
                "pip.check: 1 dependency problem: rb-app 1.0.0 has requirement rb-schema>=4.25"),
            std::string::npos)
      << err_of(r);
}

TEST_F(Pip, RestoreKeepsOrPrunesWhatTheSnapshotDoesNotList) {
  auto r = run(R"(
    local f = pip.freeze{ venv = p.venv }
    assert(f.count == 2 and f.packages["rb-schema"] == "4.25.0", json.encode(f))
    pip.pin{ venv = p.venv, packages = { ["rb-extra"] = "1.0.0", ["rb-schema"] = "4.23.0" }, find_links = p.wheels, no_index = true }
    local kept = pip.restore{ venv = p.venv, snapshot = f.path, no_index = true, find_links = p.wheels }
    assert(kept.kept["rb-extra"] == "1.0.0" and next(kept.removed) == nil, json.encode(kept))
    assert(pip.versions{ venv = p.venv }["rb-extra"] == "1.0.0")
    assert(pip.versions{ venv = p.venv }["rb-schema"] == "4.25.0")
    local pruned = pip.restore{ venv = p.venv, snapshot = f.path, prune = true }
    assert(pruned.removed["rb-extra"] == "1.0.0", json.encode(pruned))
    local v = pip.versions{ venv = p.venv }
    assert(v["rb-extra"] == nil and v.pip ~= nil and v["rb-schema"] == "4.25.0", json.encode(v))
  )");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  auto* restore = event(r, "pip.restore");
  ASSERT_NE(restore, nullptr);
  EXPECT_NE(restore->describe.find("restore " + venv_), std::string::npos);
}

TEST_F(Pip, InstallFromARequirementsFileVerifiesPinnedLines) {
  TempDir d;
  write_file(d / "requirements.txt", "# pinned\nrb-schema==4.23.0\nrb-extra\n");
  auto r = step(R"(
    local r = pip.install{ venv = p.venv, requirements = p.dir .. "/requirements.txt", find_links = p.wheels, no_index = true }
    assert(r.changed["rb-schema"].to == "4.23.0" and r.changed["rb-extra"].from == nil, json.encode(r))
    assert(fs.exists(r.snapshot))
  )",
                {{"venv", venv_}, {"wheels", wheels_}, {"dir", d.path()}});
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
}

TEST_F(Pip, VenvIsCreatedOnceAndAClearedOneIsKept) {
  TempDir d;
  auto r = step(R"(
    local v = pip.venv{ path = p.dir .. "/env", without_pip = true }
    assert(v.created and fs.exists(v.python) and v.version:match("^3%."), json.encode(v))
    local again = pip.venv{ path = p.dir .. "/env" }
    assert(again.created == false)
    fs.write(p.dir .. "/env/marker", "old")
    local fresh = pip.venv{ path = p.dir .. "/env", clear = true, without_pip = true }
    assert(fresh.created and not fs.exists(p.dir .. "/env/marker"))
    assert(fs.read(fresh.previous .. "/marker") == "old", json.encode(fresh))
  )",
                {{"dir", d.path()}});
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);

  auto plan = step("pip.venv{ path = p.dir .. '/env' }  pip.venv{ path = p.dir .. '/new' }",
                   {{"dir", d.path()}}, Mode::DryRun);
  ASSERT_EQ(plan.events.effects.size(), 2u);
  EXPECT_NE(preview_text(plan.events.effects[0]).find("exists already (Python 3."),
            std::string::npos)
      << preview_text(plan.events.effects[0]);
  EXPECT_NE(preview_text(plan.events.effects[1])
                .find("creates a virtualenv at " + d.path() + "/new with python3 (Python 3."),
            std::string::npos)
      << preview_text(plan.events.effects[1]);
  EXPECT_FALSE(stdfs::exists(d / "new"));
}

TEST_F(Pip, MissingVenvBadArgumentsAndAMissingPythonFailClearly) {
  TempDir d;
  auto r =
      step("pip.pin{ venv = p.dir .. '/nope', packages = { x = '1.0' } }", {{"dir", d.path()}});
  EXPECT_NE(err_of(r).find("pip.pin: no virtualenv at " + d.path() + "/nope (" + d.path() +
                           "/nope/bin/python is missing)"),
            std::string::npos)
      << err_of(r);
  auto bad = run("pip.pin{ venv = p.venv, packages = { ['rb-schema'] = '>=4.23' } }");
  EXPECT_NE(err_of(bad).find("bad argument 'packages' to 'pip.pin' (an exact version like "
                             "\"4.23.0\" expected for 'rb-schema', got \">=4.23\")"),
            std::string::npos)
      << err_of(bad);
  auto inject = run("pip.pin{ venv = p.venv, packages = { ['--index-url=http://evil'] = '1.0' } }");
  EXPECT_NE(err_of(inject).find("bad argument 'packages' to 'pip.pin' (not a package name"),
            std::string::npos)
      << err_of(inject);
  auto t0 = std::chrono::steady_clock::now();
  auto nopy = step("pip.venv{ path = p.dir .. '/v', python = 'python-that-is-not-here' }",
                   {{"dir", d.path()}});
  EXPECT_NE(err_of(nopy).find("pip.venv: 'python-that-is-not-here' not found on PATH"),
            std::string::npos)
      << err_of(nopy);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(Pip, AnIndexUrlTokenStaysOutOfTheJournalAndTheReport) {
  TempDir d;
  auto r = step(R"(
    pip.pin{ venv = p.venv, packages = { ["rb-schema"] = "4.23.0" },
             index_url = "https://deploy:s3cr3t-t0ken@127.0.0.1:9/simple", find_links = p.wheels, no_index = true }
  )",
                {{"venv", venv_}, {"wheels", wheels_}}, Mode::Live, d.path());
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  ASSERT_FALSE(r.events.effects.empty());
  for (const auto& e : r.events.effects) {
    EXPECT_EQ(e.describe.find("s3cr3t"), std::string::npos);
    EXPECT_EQ(e.result.dump().find("s3cr3t"), std::string::npos) << e.result.dump();
    EXPECT_EQ(e.error.find("s3cr3t"), std::string::npos) << e.error;
  }
  for (const auto& e : stdfs::directory_iterator(d.path())) {
    if (e.path().filename().string().rfind("journal.db", 0) != 0) continue;
    EXPECT_EQ(read_file(e.path().string()).find("s3cr3t-t0ken"), std::string::npos) << e.path();
  }
}

// ---------------------------------------------------------------------------------------------
// npm

class Npm : public ::testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> root_;
  static inline std::string tgz1_, tgz2_;

  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>();
    // npm's cache in the temp dir: nothing from the machine's cache or the registry is used.
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

  // A project with @rb/left-thing 1.0.0 installed from its tarball.
  std::string project(const TempDir& d) {
    std::string dir = d / "app";
    write_file(dir + "/package.json", R"({
  "name": "app", "version": "0.1.0", "private": true,
  "scripts": { "build": "node -e \"console.log('built with ' + require('@rb/left-thing'))\"",
               "fail": "node -e \"process.exit(3)\"" }
})");
    sh({"npm", "install", "--no-audit", "--no-fund", "--silent", "--save-exact", tgz1_}, dir);
    return dir;
  }
};

TEST_F(Npm, PinToAnotherTarballVerifiesAndBacksUpTheLockfile) {
  TempDir d;
  std::string dir = project(d);
  std::string lock_before = read_file(dir + "/package-lock.json");
  auto r = step(R"(
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "1.0.0")
    local r = npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = "file:" .. p.tgz2 } }
    assert(r.changed["@rb/left-thing"].from == "1.0.0" and r.changed["@rb/left-thing"].to == "2.0.0", json.encode(r))
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "2.0.0")
    assert(fs.read(r.backup .. "/package-lock.json"):find("rb%-left%-thing%-1%.0%.0%.tgz"))
    assert(fs.read(p.dir .. "/package-lock.json"):find("rb%-left%-thing%-2%.0%.0%.tgz"))
    local b = npm.run{ dir = p.dir, script = "build" }
    assert(b.stdout == "built with 2.0.0\n", b.stdout)
    -- a bare path works too, and pinning back is the same motion
    local back = npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = p.tgz1 } }
    assert(back.changed["@rb/left-thing"].to == "1.0.0", json.encode(back))
  )",
                {{"dir", dir}, {"tgz1", tgz1_}, {"tgz2", tgz2_}}, Mode::Live, d.path());
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  const EffectEvent* pin = event(r, "npm.pin");
  ASSERT_NE(pin, nullptr);
  EXPECT_EQ(read_file(pin->result["backup"].get<std::string>() + "/package-lock.json"),
            lock_before);
}

TEST_F(Npm, VerifyTellsFromNodeModulesWhetherAPinOrCiTookPlace) {
  TempDir d;
  std::string dir = project(d);
  json pin2{{"dir", dir}, {"packages", {{"@rb/left-thing", "file:" + tgz2_}}}};
  EXPECT_EQ(verify_effect("npm.pin", pin2), false);
  EXPECT_EQ(verify_effect("npm.pin", json{{"dir", dir}, {"packages", {{"@rb/left-thing", "1.0.0"}}}}),
            true);
  EXPECT_EQ(verify_effect("npm.ci", json{{"dir", dir}}), true);
  write_file(dir + "/node_modules/@rb/left-thing/package.json",
             R"({"name":"@rb/left-thing","version":"0.9.0"})");
  EXPECT_EQ(verify_effect("npm.ci", json{{"dir", dir}}), false);
}

TEST_F(Npm, DryRunPreviewsAndChangesNothing) {
  TempDir d;
  std::string dir = project(d);
  std::string before = sha256_tree(dir);
  auto r = step(R"(
    local r = npm.pin{ dir = p.dir, packages = { ["@rb/left-thing"] = "file:" .. p.tgz2 } }
    assert(r.planned and r.changed["@rb/left-thing"].to == "2.0.0", json.encode(r))
    npm.ci{ dir = p.dir }
    npm.install{ dir = p.dir }
    npm.run{ dir = p.dir, script = "build" }
    npm.run{ dir = p.dir, script = "deploy" }
    -- predicted: what the planned pin (then ci and install of the lockfile it wrote) leave
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "2.0.0")
  )",
                {{"dir", dir}, {"tgz2", tgz2_}}, Mode::DryRun);
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sha256_tree(dir), before);
  ASSERT_GE(r.events.effects.size(), 5u);
  EXPECT_EQ(preview_text(r.events.effects[0]), "@rb/left-thing 1.0.0 → 2.0.0");
  EXPECT_EQ(preview_text(r.events.effects[1]),
            "installs 1 packages from package-lock.json (lockfileVersion 3), replacing "
            "node_modules (1 packages now)");
  EXPECT_NE(
      preview_text(r.events.effects[2]).find("installs the 1 dependencies package.json declares"),
      std::string::npos)
      << preview_text(r.events.effects[2]);
  EXPECT_EQ(preview_text(r.events.effects[3]),
            "npm run build: node -e \"console.log('built with ' + require('@rb/left-thing'))\"");
  EXPECT_EQ(preview_text(r.events.effects[4]), "cannot preview: no script 'deploy' in " + dir +
                                                   "/package.json (scripts: build, fail)");
}

TEST_F(Npm, CiRebuildsNodeModulesFromTheLockfile) {
  TempDir d;
  std::string dir = project(d);
  stdfs::remove_all(dir + "/node_modules");
  auto r = step(R"(
    assert(next(npm.versions{ dir = p.dir }) == nil)
    local r = npm.ci{ dir = p.dir }
    assert(r.installed == 1 and r.lockfile == p.dir .. "/package-lock.json", json.encode(r))
    assert(npm.versions{ dir = p.dir }["@rb/left-thing"] == "1.0.0")
    assert(npm.install{ dir = p.dir }.installed == 1)
  )",
                {{"dir", dir}});
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);

  stdfs::remove(dir + "/package-lock.json");
  auto nolock = step("npm.ci{ dir = p.dir }", {{"dir", dir}});
  EXPECT_NE(err_of(nolock).find("npm.ci: no package-lock.json in " + dir + " (npm ci needs one)"),
            std::string::npos)
      << err_of(nolock);
}

TEST_F(Npm, RunFailsClearlyForAMissingScriptAndReportsAFailingOne) {
  TempDir d;
  std::string dir = project(d);
  auto r = step(R"(
    local f = npm.run{ dir = p.dir, script = "fail", check = false }
    assert(f.ok == false and f.code == 3, json.encode(f))
    npm.run{ dir = p.dir, script = "deploy" }
  )",
                {{"dir", dir}});
  EXPECT_NE(err_of(r).find("npm.run: no script 'deploy' in " + dir +
                           "/package.json (scripts: build, fail)"),
            std::string::npos)
      << err_of(r);
}

TEST_F(Npm, BadSpecsAndAMissingNpmFailPromptly) {
  TempDir d;
  std::string dir = project(d);
  auto range =
      step("npm.pin{ dir = p.dir, packages = { ['@rb/left-thing'] = '^2.0.0' } }", {{"dir", dir}});
  EXPECT_NE(
      err_of(range).find(
          "bad argument 'packages' to 'npm.pin' (an exact version like \"1.2.3\" or a tarball"),
      std::string::npos)
      << err_of(range);
  auto wrong =
      step("npm.pin{ dir = p.dir, packages = { other = p.tgz } }", {{"dir", dir}, {"tgz", tgz2_}});
  EXPECT_NE(err_of(wrong).find("npm.pin: " + tgz2_ + " holds @rb/left-thing, not other"),
            std::string::npos)
      << err_of(wrong);
  auto nodir =
      step("npm.pin{ dir = p.dir .. '/none', packages = { x = '1.0.0' } }", {{"dir", dir}});
  EXPECT_NE(err_of(nodir).find("npm.pin: no such directory: " + dir + "/none"), std::string::npos)
      << err_of(nodir);

  std::string path = ::getenv("PATH");
  ::setenv("PATH", "/nonexistent", 1);
  auto t0 = std::chrono::steady_clock::now();
  auto nonpm = step("npm.ci{ dir = p.dir }", {{"dir", dir}});
  ::setenv("PATH", path.c_str(), 1);
  EXPECT_NE(err_of(nonpm).find("npm.ci: 'npm' not found on PATH"), std::string::npos)
      << err_of(nonpm);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
