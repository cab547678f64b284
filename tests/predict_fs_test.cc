// fs predictions in a dry-run (issue 9): a probe after a planned change answers from what the
// change will make true (marked "predicted"), a preview fails the dry-run where the live call
// would fail (WouldFail), and previews carry the basis a plan is checked against. Each runbook
// is also run live, so the predictions are checked against what really happens.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>

#include "core/hash.h"
#include "core/unknown.h"
#include "journal/journal.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

struct FsRun {
  LuaRun lua;
  std::string run_dir;
  std::vector<EffectRecord> journal;
  int code() const { return lua.result.exit_code; }
  std::string error() const {
    return lua.events.step_errors.empty() ? lua.result.error : lua.events.step_errors[0];
  }
  // The journaled states of the effects named `name`, in order.
  std::vector<std::string> states(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& e : journal)
      if (e.name == name) out.push_back(e.state);
    return out;
  }
  const EffectEvent* event(const std::string& name, int nth = 0) const {
    for (const auto& e : lua.events.effects)
      if (e.name == name && nth-- == 0) return &e;
    return nullptr;
  }
};

// Runs `body` as one step with p.dir = the data dir, in its own run dir (journal, artifacts).
FsRun step(const TempDir& data, const std::string& body, Mode mode) {
  std::string code =
      "runbook { name = 'predict-fs', version = '1.0.0', params = { dir = { type = 'path' } } }\n"
      "step('s', function(p)\n" + body + "\nend)\n";
  static int n = 0;
  std::string run_dir = data.path() + "-run" + std::to_string(++n);
  stdfs::create_directories(run_dir);
  FsRun r;
  r.run_dir = run_dir;
  r.lua = run_lua(run_dir, code, mode, {{"dir", data.path()}});
  Journal j(run_dir + "/journal.db");
  r.journal = j.effects(r.lua.result.run_id);
  return r;
}

struct RunDirs {
  std::vector<std::string> dirs;
  ~RunDirs() {
    std::error_code ec;
    for (const auto& d : dirs) stdfs::remove_all(d, ec);
  }
};

// A dry-run of `body` on a fresh copy of the fixture: changes nothing in the data dir.
FsRun dry(const TempDir& data, const std::string& body, RunDirs& cleanup) {
  std::string before = sha256_tree(data.path());
  FsRun r = step(data, body, Mode::DryRun);
  cleanup.dirs.push_back(r.run_dir);
  EXPECT_EQ(sha256_tree(data.path()), before) << "the dry-run changed the data dir";
  return r;
}

FsRun live(const TempDir& data, const std::string& body, RunDirs& cleanup) {
  FsRun r = step(data, body, Mode::Live);
  cleanup.dirs.push_back(r.run_dir);
  return r;
}

void fixture(const TempDir& d) {
  write_file(d / "app.conf", "port = 8080\n");
  stdfs::create_directories(d / "old/sub");
  write_file(d / "old/a.txt", "a");
  write_file(d / "old/sub/b.txt", "b");
  stdfs::create_directories(d / "src/lib");
  write_file(d / "src/lib/m.py", "print('m')\n");
  write_file(d / "src/README", "readme\n");
  stdfs::create_directories(d / "backups");
  write_file(d / "backups/app.conf.bak-20200101-000000", "ancient\n");
}

std::string sha(const std::string& s) { return sha256_hex(s); }

}  // namespace

// ---- write → read / exists / stat / sha256 ----

TEST(PredictFs, WriteThenReadStatShaAnswerThePlannedContent) {
  TempDir d;
  fixture(d);
  RunDirs c;
  const std::string body = R"(
    local f = p.dir .. "/app.conf"
    fs.write{ path = f, content = "port = 9090\n", mode = 384 }
    assert(fs.read(f) == "port = 9090\n", "read")
    assert(fs.exists(f) == true)
    local st = fs.stat(f)
    assert(st.exists and st.type == "file" and st.size == 12 and st.mode == 384, "stat")
    assert(fs.sha256(f) == ")" + sha("port = 9090\n") + R"(", "sha256")
    -- a new file in a new directory
    fs.mkdir(p.dir .. "/new/sub")
    assert(fs.stat(p.dir .. "/new").type == "directory")
    fs.write(p.dir .. "/new/sub/x.txt", "x")
    assert(fs.read(p.dir .. "/new/sub/x.txt") == "x")
    -- what was not touched is read live
    assert(fs.read(p.dir .. "/src/README") == "readme\n")
  )";
  FsRun r = dry(d, body, c);
  ASSERT_EQ(r.code(), 0) << r.error();
  EXPECT_EQ(r.states("fs.read"), (std::vector<std::string>{"predicted", "predicted", "done"}));
  EXPECT_EQ(r.states("fs.stat"), (std::vector<std::string>{"predicted", "predicted"}));
  EXPECT_EQ(r.states("fs.sha256"), (std::vector<std::string>{"predicted"}));
  ASSERT_NE(r.event("fs.read"), nullptr);
  EXPECT_EQ(r.event("fs.read")->status, "predicted");
  // stat's mtime cannot be predicted: an unknown saying why.
  const EffectEvent* st = r.event("fs.stat");
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(is_unknown(st->result["mtime"])) << st->result.dump();
  EXPECT_NE(unknown_why(st->result["mtime"]).find("after write"), std::string::npos);

  // The same runbook live: the predictions were right.
  TempDir l;
  fixture(l);
  FsRun lr = live(l, body, c);
  EXPECT_EQ(lr.code(), 0) << lr.error();
  EXPECT_EQ(read_file(l / "app.conf"), "port = 9090\n");
}

TEST(PredictFs, AVerificationContradictingTheWriteFailsTheDryRun) {
  TempDir d;
  fixture(d);
  RunDirs c;
  FsRun r = dry(d, R"(
    fs.write(p.dir .. "/app.conf", "port = 9090\n")
    assert(fs.read(p.dir .. "/app.conf") == "port = 8080\n", "still the old port")
  )", c);
  EXPECT_EQ(r.code(), kExitFailed);
  EXPECT_NE(r.error().find("still the old port"), std::string::npos) << r.error();
  FsRun r2 = dry(d, R"(
    fs.write(p.dir .. "/app.conf", "port = 9090\n")
    assert(fs.stat(p.dir .. "/app.conf").size == 12345, "size")
  )", c);
  EXPECT_EQ(r2.code(), kExitFailed);
  FsRun r3 = dry(d, R"(
    fs.write(p.dir .. "/app.conf", "port = 9090\n")
    assert(fs.sha256(p.dir .. "/app.conf") == ")" + sha("port = 8080\n") + R"(", "sha")
  )", c);
  EXPECT_EQ(r3.code(), kExitFailed);
}

TEST(PredictFs, ContentTooLargeToKeepIsUnknownButExistsAndStatAnswer) {
  TempDir d;
  fixture(d);
  RunDirs c;
  FsRun r = dry(d, R"(
    local f = p.dir .. "/big.bin"
    fs.write(f, string.rep("z", 2 * 1024 * 1024))
    local content = fs.read(f)
    assert(fs.exists(f))
    assert(fs.stat(f).size == 2 * 1024 * 1024)
  )", c);
  ASSERT_EQ(r.code(), 0) << r.error();
  const EffectEvent* rd = r.event("fs.read");
  ASSERT_NE(rd, nullptr);
  EXPECT_EQ(rd->status, "predicted");
  ASSERT_TRUE(is_unknown(rd->result)) << rd->result.dump().substr(0, 200);
  EXPECT_NE(unknown_why(rd->result).find("fs.read"), std::string::npos);
  EXPECT_NE(unknown_why(rd->result).find("after write"), std::string::npos) << unknown_why(rd->result);
}

TEST(PredictFs, ASecretWriteIsRedactedInPredictedResults) {
  TempDir d;
  fixture(d);
  RunDirs c;
  // Built at run time so that the runbook's text does not hold it.
  FsRun r = dry(d, R"(
    local tok = "tok-" .. string.rep("Q", 3) .. "zz81" .. "-secretvalue"
    local f = p.dir .. "/app.env"
    fs.write{ path = f, content = "API_TOKEN=" .. tok .. "\n", secret = true }
    local back = fs.read{ path = f, secret = true }
    assert(back == "API_TOKEN=" .. tok .. "\n", "the runbook gets it whole")
    local plain = fs.read(f)
    assert(plain == back)
  )", c);
  ASSERT_EQ(r.code(), 0) << r.error();
  EXPECT_EQ(r.states("fs.read"), (std::vector<std::string>{"predicted", "predicted"}));
  const std::string secret = "tok-QQQzz81-secretvalue";
  for (const auto& e : r.lua.events.effects) {
    EXPECT_EQ(e.result.dump().find(secret), std::string::npos) << e.name << ": " << e.result.dump();
    EXPECT_EQ(e.preview.dump().find(secret), std::string::npos) << e.name;
  }
  for (const auto& e : r.journal) EXPECT_EQ(e.result.dump().find(secret), std::string::npos) << e.name;
  EXPECT_TRUE(files_containing(r.run_dir, secret).empty());
}

// ---- remove → exists / glob / stat ----

TEST(PredictFs, RemoveMakesThePathAndItsChildrenNotExist) {
  TempDir d;
  fixture(d);
  RunDirs c;
  const std::string body = R"(
    local old = p.dir .. "/old"
    fs.remove(old)
    assert(fs.exists(old) == false, "old")
    assert(fs.exists(old .. "/sub/b.txt") == false, "child")
    assert(fs.stat(old .. "/a.txt").exists == false, "stat child")
    assert(#fs.glob(old .. "/*") == 0, "glob")
    local top = fs.glob(p.dir .. "/*")
    for _, x in ipairs(top) do assert(x ~= old, "glob lists the removed dir") end
    assert(#top == 3, "glob keeps the others: " .. #top)
    local ok = pcall(fs.read, old .. "/a.txt")
    assert(not ok, "reading a removed file fails as live")
    -- removing what is not there is accepted, as live
    fs.remove(p.dir .. "/never-there")
    -- the only backup removed: nothing is the newest
    fs.remove(p.dir .. "/backups/app.conf.bak-20200101-000000")
    assert(fs.latest(p.dir .. "/backups") == nil, "latest after removing the only entry")
  )";
  FsRun r = dry(d, body, c);
  ASSERT_EQ(r.code(), 0) << r.error();
  EXPECT_EQ(r.states("fs.exists"), (std::vector<std::string>{"predicted", "predicted"}));
  EXPECT_EQ(r.states("fs.glob"), (std::vector<std::string>{"predicted", "predicted"}));
  EXPECT_EQ(r.states("fs.latest"), (std::vector<std::string>{"predicted"}));
  TempDir l;
  fixture(l);
  FsRun lr = live(l, body, c);
  EXPECT_EQ(lr.code(), 0) << lr.error();
  EXPECT_FALSE(stdfs::exists(l / "old"));

  FsRun wrong = dry(d, R"(
    fs.remove(p.dir .. "/old")
    assert(fs.exists(p.dir .. "/old/a.txt"), "still there")
  )", c);
  EXPECT_EQ(wrong.code(), kExitFailed);
  EXPECT_NE(wrong.error().find("still there"), std::string::npos) << wrong.error();
}

// ---- backup → latest / read, restore → read ----

TEST(PredictFs, BackupIsWhatLatestFindsAndRestorePutsItBack) {
  TempDir d;
  fixture(d);
  RunDirs c;
  const std::string body = R"(
    local f = p.dir .. "/app.conf"
    local b = fs.backup{ path = f, dir = p.dir .. "/backups" }
    assert(fs.latest(p.dir .. "/backups", "app.conf.bak-*") == b, "latest is the new backup")
    assert(fs.read(b) == "port = 8080\n", "the backup holds the old content")
    local found = fs.glob(p.dir .. "/backups/app.conf.bak-*")
    assert(#found == 2 and found[2] == b, "glob: " .. table.concat(found, ","))
    fs.write(f, "port = 9090\n")
    assert(fs.read(f) == "port = 9090\n")
    fs.restore{ backup = fs.latest(p.dir .. "/backups", "app.conf.bak-*"), path = f }
    assert(fs.read(f) == "port = 8080\n", "restored")
    -- a backup into a directory that does not exist yet: the backup makes it
    local b2 = fs.backup{ path = p.dir .. "/src", dir = p.dir .. "/later/baks" }
    assert(fs.read(b2 .. "/lib/m.py") == "print('m')\n", "tree backup")
    assert(fs.latest(p.dir .. "/later/baks") == b2)
  )";
  FsRun r = dry(d, body, c);
  ASSERT_EQ(r.code(), 0) << r.error();
  EXPECT_EQ(r.states("fs.latest"), (std::vector<std::string>{"predicted", "predicted", "predicted"}));
  TempDir l;
  fixture(l);
  FsRun lr = live(l, body, c);
  EXPECT_EQ(lr.code(), 0) << lr.error();
  EXPECT_EQ(read_file(l / "app.conf"), "port = 8080\n");

  FsRun wrong = dry(d, R"(
    local b = fs.backup{ path = p.dir .. "/app.conf", dir = p.dir .. "/backups" }
    assert(fs.latest(p.dir .. "/backups", "app.conf.bak-*") == p.dir .. "/backups/app.conf.bak-20200101-000000", "old")
  )", c);
  EXPECT_EQ(wrong.code(), kExitFailed);
  FsRun wrong2 = dry(d, R"(
    local f = p.dir .. "/app.conf"
    local b = fs.backup(f)
    fs.write(f, "port = 9090\n")
    fs.restore{ backup = b, path = f }
    assert(fs.read(f) == "port = 9090\n", "not restored")
  )", c);
  EXPECT_EQ(wrong2.code(), kExitFailed);
  EXPECT_NE(wrong2.error().find("not restored"), std::string::npos) << wrong2.error();
}

// ---- copy → read / stat / glob ----

TEST(PredictFs, CopyOfATreeIsReadableAtItsDestination) {
  TempDir d;
  fixture(d);
  RunDirs c;
  const std::string body = R"(
    fs.write(p.dir .. "/src/lib/m.py", "print('v2')\n")
    fs.copy(p.dir .. "/src", p.dir .. "/deploy/current")
    assert(fs.read(p.dir .. "/deploy/current/lib/m.py") == "print('v2')\n", "planned source content")
    assert(fs.read(p.dir .. "/deploy/current/README") == "readme\n", "live source content")
    assert(fs.stat(p.dir .. "/deploy/current").type == "directory")
    local g = fs.glob(p.dir .. "/deploy/current/*/*.py")
    assert(#g == 1 and g[1] == p.dir .. "/deploy/current/lib/m.py", "glob")
    fs.copy(p.dir .. "/app.conf", p.dir .. "/app.conf.copy")
    assert(fs.sha256(p.dir .. "/app.conf.copy") == fs.sha256(p.dir .. "/app.conf"))
  )";
  FsRun r = dry(d, body, c);
  ASSERT_EQ(r.code(), 0) << r.error();
  TempDir l;
  fixture(l);
  FsRun lr = live(l, body, c);
  EXPECT_EQ(lr.code(), 0) << lr.error();
  FsRun wrong = dry(d, R"(
    fs.copy(p.dir .. "/src", p.dir .. "/deploy")
    assert(not fs.exists(p.dir .. "/deploy/lib/m.py"), "not copied")
  )", c);
  EXPECT_EQ(wrong.code(), kExitFailed);
}

// ---- WouldFail: the dry-run fails where the live run would ----

TEST(PredictFs, PreviewsFailTheDryRunWhereTheLiveCallWould) {
  TempDir d;
  fixture(d);
  ASSERT_EQ(::mkfifo((d / "pipe").c_str(), 0644), 0);
  RunDirs c;
  struct Case {
    const char* what;
    std::string body;
    const char* says;
  } cases[] = {
      {"copy from a missing source", "fs.copy(p.dir .. '/nope', p.dir .. '/x')", "nope does not exist"},
      {"copy from a source a planned remove took away",
       "fs.remove(p.dir .. '/app.conf'); fs.copy(p.dir .. '/app.conf', p.dir .. '/x')", "does not exist"},
      {"copy into a path under a file", "fs.copy(p.dir .. '/src', p.dir .. '/app.conf/x')", "not a directory"},
      {"copy of a tree into itself's replaced place", "fs.copy(p.dir .. '/src/lib', p.dir .. '/src')",
       "moved away first"},
      {"restore from a missing backup", "fs.restore{ backup = p.dir .. '/backups/none', path = p.dir .. '/app.conf' }",
       "does not exist"},
      {"restore from a fifo", "fs.restore{ backup = p.dir .. '/pipe', path = p.dir .. '/app.conf' }",
       "not a file, directory or link"},
      {"backup of a missing path", "fs.backup(p.dir .. '/nope')", "nope does not exist"},
      {"backup into a directory under a file", "fs.backup{ path = p.dir .. '/src', dir = p.dir .. '/app.conf/b' }",
       "not a directory"},
      {"write into a missing directory", "fs.write(p.dir .. '/missing/x.conf', 'x')", "No such file or directory"},
      {"write into a directory a planned remove took away",
       "fs.remove(p.dir .. '/old'); fs.write(p.dir .. '/old/a.txt', 'x')", "No such file or directory"},
      {"write over a directory", "fs.write(p.dir .. '/old', 'x')", "Is a directory"},
      {"mkdir under a file", "fs.mkdir(p.dir .. '/app.conf/sub')", "app.conf is not a directory"},
  };
  for (const auto& k : cases) {
    FsRun r = dry(d, k.body + "\nerror('the dry-run went on past it')", c);
    EXPECT_EQ(r.code(), kExitFailed) << k.what;
    EXPECT_NE(r.error().find("the live run would fail here:"), std::string::npos) << k.what << ": " << r.error();
    EXPECT_NE(r.error().find(k.says), std::string::npos) << k.what << ": " << r.error();
  }
  // The live run does fail there (the same cases, live, on a copy of the fixture).
  for (const auto& k : cases) {
    TempDir l;
    fixture(l);
    ::mkfifo((l / "pipe").c_str(), 0644);
    FsRun r = live(l, k.body + "\nerror('the live run went on past it')", c);
    EXPECT_EQ(r.code(), kExitFailed) << k.what;
    EXPECT_EQ(r.error().find("went on past it"), std::string::npos) << k.what << ": " << r.error();
  }
}

TEST(PredictFs, WhatTheLiveCallAcceptsDoesNotFailTheDryRun) {
  TempDir d;
  fixture(d);
  RunDirs c;
  const std::string body = R"(
    fs.remove(p.dir .. "/not-there")                                  -- nothing to remove: fine
    fs.backup{ path = p.dir .. "/app.conf", dir = p.dir .. "/a/b/c" } -- makes its directory
    fs.copy(p.dir .. "/app.conf", p.dir .. "/deep/er/app.conf")       -- makes its parents
    fs.write(p.dir .. "/made.txt", "m")
    fs.copy(p.dir .. "/made.txt", p.dir .. "/made2.txt")               -- source from a planned write
    fs.mkdir(p.dir .. "/old")                                          -- exists: fine
    fs.restore{ backup = p.dir .. "/old", path = p.dir .. "/old-restored" } -- a directory backup
  )";
  FsRun r = dry(d, body, c);
  EXPECT_EQ(r.code(), 0) << r.error();
  TempDir l;
  fixture(l);
  FsRun lr = live(l, body, c);
  EXPECT_EQ(lr.code(), 0) << lr.error();
}

TEST(PredictFs, ABackupLargerThanTheFreeDiskWouldFail) {
  TempDir d;
  fixture(d);
  RunDirs c;
  struct statvfs v;
  ASSERT_EQ(::statvfs(d.path().c_str(), &v), 0);
  uint64_t free_bytes = static_cast<uint64_t>(v.f_bfree) * v.f_frsize;
  // A sparse file whose size is more than the disk has free.
  { std::ofstream(d / "huge.img"); }
  stdfs::resize_file(d / "huge.img", free_bytes + (uint64_t{1} << 30));
  // (Not dry(): hashing the data dir would read the whole sparse file.)
  FsRun r = step(d, "fs.backup{ path = p.dir .. '/huge.img', dir = p.dir .. '/backups' }", Mode::DryRun);
  c.dirs.push_back(r.run_dir);
  EXPECT_FALSE(stdfs::exists(d / "backups/huge.img.bak-0")) ;
  EXPECT_EQ(std::distance(stdfs::directory_iterator(d / "backups"), stdfs::directory_iterator()), 1);
  EXPECT_EQ(r.code(), kExitFailed);
  EXPECT_NE(r.error().find("the live run would fail here:"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("free"), std::string::npos) << r.error();
  stdfs::remove(d / "huge.img");
}

// ---- basis ----

TEST(PredictFs, PreviewsCarryTheBasisOfWhatTheyReplaceAndReadFrom) {
  TempDir d;
  fixture(d);
  RunDirs c;
  FsRun r = dry(d, R"(
    fs.write(p.dir .. "/app.conf", "port = 9090\n")
    fs.write(p.dir .. "/app.conf", "port = 7070\n")
    fs.write(p.dir .. "/fresh.conf", "new\n")
    fs.copy(p.dir .. "/src/README", p.dir .. "/app.conf")
    fs.remove(p.dir .. "/old")
    fs.backup(p.dir .. "/src")
    fs.restore{ backup = p.dir .. "/backups/app.conf.bak-20200101-000000", path = p.dir .. "/app.conf" }
  )", c);
  ASSERT_EQ(r.code(), 0) << r.error();
  auto basis = [&](const char* name, int nth) { return r.event(name, nth)->preview["basis"]; };
  EXPECT_EQ(basis("fs.write", 0)["sha256"], sha("port = 8080\n"));
  // The second write replaces what the first one planned.
  EXPECT_EQ(basis("fs.write", 1)["sha256"], sha("port = 9090\n"));
  EXPECT_EQ(basis("fs.write", 2)["sha256"], "absent");
  EXPECT_EQ(basis("fs.copy", 0)["source"], sha("readme\n"));
  EXPECT_EQ(basis("fs.copy", 0)["sha256"], sha("port = 7070\n"));
  EXPECT_EQ(basis("fs.restore", 0)["source"], sha("ancient\n"));
  EXPECT_EQ(basis("fs.restore", 0)["sha256"], sha("readme\n"));
  std::string tree = basis("fs.remove", 0)["sha256"].get<std::string>();
  EXPECT_EQ(tree.rfind("D ", 0), 0u) << tree;
  std::string src = basis("fs.backup", 0)["source"].get<std::string>();
  EXPECT_EQ(src.rfind("D ", 0), 0u) << src;

  // Deterministic, and it changes with the content it acts on.
  FsRun again = dry(d, "fs.remove(p.dir .. '/old')", c);
  EXPECT_EQ(again.event("fs.remove")->preview["basis"]["sha256"], tree);
  write_file(d / "old/sub/b.txt", "changed");
  FsRun changed = dry(d, "fs.remove(p.dir .. '/old')", c);
  EXPECT_NE(changed.event("fs.remove")->preview["basis"]["sha256"], tree);
}

// ---- the CLI ----

TEST(PredictFs, CliDryRunMarksPredictionsAndFailsWhereLiveWould) {
  TempDir d;
  fixture(d);
  write_file(d / "rb.lua", R"(
    runbook { name = 'cli-predict', version = '1.0.0', params = { dir = { type = 'path' } } }
    step('deploy config', function(p)
      fs.backup(p.dir .. "/app.conf")
      fs.write(p.dir .. "/app.conf", "port = 9090\n")
    end)
    step('verify', function(p)
      assert(fs.read(p.dir .. "/app.conf") == "port = 9090\n", "config not deployed")
    end)
  )");
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", d / "journal.db"}};
  std::string before = read_file(d / "app.conf");
  auto ok = run_cli({"exec", d / "rb.lua", "--dry-run", "-p", "dir=" + d.path(), "--json"}, env);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  bool predicted = false;
  for (const auto& ev : ok.events())
    if (ev.value("name", "") == "fs.read" && ev.value("status", "") == "predicted") predicted = true;
  EXPECT_TRUE(predicted) << ok.out;
  EXPECT_EQ(read_file(d / "app.conf"), before);

  write_file(d / "bad.lua", R"(
    runbook { name = 'cli-predict-bad', version = '1.0.0', params = { dir = { type = 'path' } } }
    step('restore', function(p)
      fs.restore{ backup = p.dir .. "/backups/missing.bak", path = p.dir .. "/app.conf" }
    end)
  )");
  auto bad = run_cli({"exec", d / "bad.lua", "--dry-run", "-p", "dir=" + d.path()}, env);
  EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
  EXPECT_NE((bad.out + bad.err).find("the live run would fail here:"), std::string::npos) << bad.out << bad.err;
}
