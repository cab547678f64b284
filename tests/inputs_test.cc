// Hostile inputs through the real binary: text that made std::regex recurse off the stack,
// files that never end, and declarations whose mistakes were once silently replaced by a
// default. Each ends with a clear error (or works), never a signal or a hang.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>

#include "support/support.h"

using namespace rb::test;

namespace {

struct Env {
  TempDir dir;
  std::map<std::string, std::string> env() const {
    return {{"RUNBOOK_JOURNAL", dir / "journal.db"}};
  }
  std::string file(const std::string& code, const std::string& name = "rb.lua") const {
    write_file(dir / name, code);
    return dir / name;
  }
};

std::string many(char c, size_t n) { return std::string(n, c); }

const char* kHead = "runbook{ name = \"t\", version = \"1.0.0\" }\n";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

// A JVM-style process with a 40 KB command line runs while proc.find matches on command lines;
// std::regex recursed once per character and segfaulted. (a+)+b backtracked for 24 s past a 3 s
// step timeout; RE2 answers in linear time.
TEST(Inputs, ProcFindMatchesBesideA40KBCommandLine) {
  Env e;
  const std::string classpath = "-cp=" + many('a', 40'000);
  write_file(e.dir / "jvm.py", "import time\ntime.sleep(60)\n");
  Child jvm({"python3", e.dir / "jvm.py", "inputs-test-jvm-4242", classpath});
  // The process is listed with its whole command line before the runbook looks.
  std::string cmdline;
  for (int i = 0; i < 100 && cmdline.size() < 40'000; ++i) {
    std::string raw = read_file("/proc/" + std::to_string(jvm.pid()) + "/cmdline");
    cmdline = raw;
    if (cmdline.size() < 40'000) usleep(50'000);
  }
  ASSERT_GE(cmdline.size(), 40'000u) << "python3 is needed: apt-get install python3";

  auto f = e.file(std::string(kHead) + R"(
step{ "find", timeout = "3s", run = function()
  local hit = proc.find{ argv_match = "inputs%-test%-jvm%-%d+ %-cp=a+$" }
  assert(#hit == 1, "expected the jvm, found " .. #hit)
  assert(#hit[1].cmdline > 40000)
  local none = proc.find{ argv_match = "(a+)+b" }
  for _, p in ipairs(none) do assert(not p.cmdline:find("inputs-test-jvm", 1, true)) end
  log.info("found " .. hit[1].pid)
end }
)");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli({"exec", f}, e.env(), 30);
  double took = seconds_since(t0);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "found " + std::to_string(jvm.pid()))) << r.out;
  EXPECT_LT(took, 3.0) << "proc.find took " << took << "s";
}

TEST(Inputs, AnInvalidArgvMatchIsAnArgumentErrorNamingProcFind) {
  Env e;
  for (const char* pattern : {"(", "(a)\\\\1", "[z-a]"}) {
    auto f = e.file(std::string(kHead) + "step('find', function() proc.find{ argv_match = \"" +
                    pattern + "\" } end)\n");
    auto r = run_cli({"exec", f}, e.env());
    EXPECT_EQ(r.code, 2) << pattern << r.out << r.err;
    EXPECT_TRUE(has(
        r.out, "rb.lua:2: bad argument 'argv_match' to 'proc.find' (invalid regular expression"))
        << pattern << "\n"
        << r.out;
  }
}

// Long text in the fields that were matched with std::regex: no crash, the right answer.
TEST(Inputs, HugeNamesVersionsAndUrlsAreCheckedWithoutCrashing) {
  Env e;
  auto ok = e.file("runbook{ name = \"" + many('n', 50'000) + "\", version = \"1.0.0-" +
                   many('p', 200'000) +
                   "\", params = { u = { type = \"url\" } } }\n"
                   "step('a', function(p) assert(#p.u > 30000) end)\n");
  auto r = run_cli({"exec", ok, "-p", "u=http://" + many('h', 30'000)}, e.env());
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 2000) << r.err.substr(0, 2000);

  auto bad = e.file("runbook{ name = \"" + many('n', 50'000) + "!\", version = \"1.0.0+" +
                    many('b', 200'000) + " \" }\nstep('a', function() end)\n");
  r = run_cli({"check", bad}, e.env());
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "may hold only letters, digits")) << r.err.substr(0, 500);
  EXPECT_TRUE(has(r.err, "is not semver")) << r.err.substr(0, 500);
  EXPECT_LT(r.err.size(), 2000u) << "the message quotes the whole value";

  auto url = e.file(std::string(kHead) + "step('a', function() end)\n", "u.lua");
  write_file(url,
             "runbook{ name = \"t\", version = \"1.0.0\", params = { u = { type = \"url\" } } }\n"
             "step('a', function() end)\n");
  r = run_cli({"exec", url, "-p", "u=http://" + many('h', 30'000) + " x"}, e.env());
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "parameter 'u' must be a URL")) << r.err.substr(0, 300);
}

TEST(Inputs, StatsSinceRefusesOutOfRangeAndHugeValues) {
  Env e;
  for (const std::string& since :
       {std::string("999999999999d"), std::string("36501d"), many('1', 40'000) + "d"}) {
    auto r = run_cli({"stats", "--since", since}, e.env());
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_TRUE(has(r.err, "is out of range (at most 36500d)")) << r.err.substr(0, 300);
  }
  for (const std::string& since : {many('1', 40'000), std::string("2026-02-30"),
                                   std::string("2026-13-01"), std::string("2026-11-01T25:00")}) {
    auto r = run_cli({"stats", "--since", since}, e.env());
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_TRUE(has(r.err, "--since takes a duration like 7d")) << r.err.substr(0, 300);
  }
  for (const char* since :
       {"7d", "12h", "2026-11-01", "2026-11-01T10:00:00Z", "2024-02-29 23:59"}) {
    auto r = run_cli({"stats", "--since", since}, e.env());
    EXPECT_EQ(r.code, 0) << since << r.err;
  }
}

// `runbook exec /dev/zero` read 3.6 GB in 5 s. A runbook is a regular file of at most 8 MiB.
TEST(Inputs, NonRegularOrHugeRunbookFilesAreRefusedAtOnce) {
  Env e;
  std::string fifo = e.dir / "fifo.lua";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string huge = e.dir / "huge.lua";
  write_file(huge,
             std::string(kHead) + "step('a', function() end)\n--" + many('x', 9u << 20) + "\n");
  struct Case {
    std::string file, says;
  };
  for (const Case& c : {Case{"/dev/zero", "/dev/zero: not a regular file (a character device)"},
                        Case{fifo, "fifo.lua: not a regular file (a FIFO)"},
                        Case{e.dir.path(), ": not a regular file (a directory)"},
                        Case{huge, "huge.lua: the file is larger than 8 MiB"}}) {
    for (const char* cmd : {"exec", "check"}) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = run_cli({cmd, c.file}, e.env(), 10);
      EXPECT_EQ(r.code, 2) << cmd << " " << c.file << r.out << r.err;
      EXPECT_TRUE(has(r.err, c.says)) << cmd << " " << c.file << ": " << r.err;
      EXPECT_LT(seconds_since(t0), 2.0) << cmd << " " << c.file;
    }
  }
  // A replay against such a file, and a resume of a run whose file became one.
  auto good = e.file(std::string(kHead) + "step('a', function() error('stop') end)\n");
  ASSERT_EQ(run_cli({"exec", good}, e.env()).code, 1);
  auto r = run_cli({"replay", "last", "--against", "/dev/zero"}, e.env(), 10);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "/dev/zero: not a regular file")) << r.err;
  std::filesystem::remove(good);
  ASSERT_EQ(mkfifo(good.c_str(), 0600), 0);
  r = run_cli({"resume", "last"}, e.env(), 10);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "rb.lua: not a regular file (a FIFO)")) << r.err;
}

TEST(Inputs, RequiredModulesHaveTheSameBound) {
  Env e;
  write_file(e.dir / "big.lua", "return {}\n--" + many('x', 9u << 20) + "\n");
  auto f = e.file(std::string(kHead) + "local big = require('big')\nstep('a', function() end)\n");
  auto r = run_cli({"check", f}, e.env(), 10);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "rb.lua:2: require 'big': ")) << r.err;
  EXPECT_TRUE(has(r.err, "big.lua: the file is larger than 8 MiB")) << r.err;
}

// A file saved by an editor with a BOM, or made executable with a #! line, is a runbook.
TEST(Inputs, ByteOrderMarkAndShebangLineAreAccepted) {
  Env e;
  auto bom = e.file("\xEF\xBB\xBF" + std::string(kHead) + "step('a', function() end)\n");
  auto r = run_cli({"exec", bom}, e.env());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto bang = e.file("#!/usr/bin/env -S runbook exec\n" + std::string(kHead) +
                         "step('a', function()\n  error('on line four')\nend)\n",
                     "bang.lua");
  r = run_cli({"exec", bang}, e.env());
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "bang.lua:4: on line four")) << r.out;
  // Both: the BOM first, then the #! line.
  auto both = e.file(
      "\xEF\xBB\xBF#!/usr/bin/runbook\n" + std::string(kHead) + "step('a', function() end)\n",
      "both.lua");
  EXPECT_EQ(run_cli({"check", both}, e.env()).code, 0);
  // The journal records the file's own bytes: a replay finds it unchanged.
  r = run_cli({"replay", "last"}, e.env());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_FALSE(has(r.err, "has changed")) << r.err;
}

// Each mistake was once replaced by a default (a 30-minute timeout, no choices, "{}" as a list
// element). Now each is an error at load time with file:line.
TEST(Inputs, DeclarationMistakesAreErrorsWithFileAndLine) {
  Env e;
  struct Case {
    std::string decl, says;
  };
  const std::string ok_step = "\nstep('a', function() end)\n";
  auto param = [&](const std::string& spec) {
    return "runbook{ name = 't', version = '1.0.0',\n  params = { x = " + spec + " } }" + ok_step;
  };
  auto step = [&](const std::string& fields) {
    return std::string(kHead) + "step{ 'a',\n  " + fields + " }\n";
  };
  const std::vector<Case> cases = {
      {step("timeout = '', run = function() end"),
       "rb.lua:2: step 'a': timeout '' is not a duration"},
      {step("timeout = true, run = function() end"),
       "rb.lua:2: step 'a': timeout must be a duration like \"30s\", not a boolean"},
      {step("timeout = 30, run = function() end"),
       "rb.lua:2: step 'a': timeout must be a duration like \"30s\", not a number"},
      {step("timeout = '0s', run = function() end"),
       "rb.lua:2: step 'a': timeout '0s' must be more than 0"},
      {step("timeout = '999999999h', run = function() end"),
       "rb.lua:2: step 'a': timeout '999999999h' is not a duration"},
      {step("retry_delay = {}, run = function() end"),
       "rb.lua:2: step 'a': retry_delay must be a duration"},
      {step("retry_delay = '25h', run = function() end"),
       "rb.lua:2: step 'a': retry_delay '25h' is not a duration like \"30s\" (at most 24h)"},
      {step("retries = 1e18, run = function() end"),
       "rb.lua:2: step 'a': retries must be an integer from 0 to 100"},
      {step("retries = -1, run = function() end"),
       "rb.lua:2: step 'a': retries must be an integer from 0 to 100"},
      {step("always = 'no', run = function() end"),
       "rb.lua:2: step 'a': 'always' must be true or false"},
      {step("run = 'echo hi'"), "rb.lua:2: step 'a': 'run' must be a function, not string"},
      {step("'b', run = function() end"), "rb.lua:2: step 'a': only the name is given by position"},
      {std::string(kHead) + "step{ 42,\n run = function() end }\n",
       "rb.lua:2: step: the name must be a string"},
      {std::string(kHead) + "step('a',\n 'not a function')\n",
       "rb.lua:2: step 'a': the second argument must be a function"},
      {param("{ choices = 'x' }"),
       "rb.lua:1: runbook{}: param 'x': choices must be a non-empty list of strings"},
      {param("{ choices = { 'a', {} } }"),
       "param 'x': choices must be a non-empty list of strings"},
      {param("{ choices = {} }"), "param 'x': choices must be a non-empty list of strings"},
      {param("{ choices = { 'a', 'b' }, default = 'c' }"),
       "param 'x': default 'c' is not one of a, b"},
      {param("{ type = 'list', default = { {} } }"), "param 'x': default is not a list of strings"},
      {param("{ type = 'list', default = true }"), "param 'x': default is not a list of strings"},
      {param("{ type = true }"), "param 'x': 'type' must be a string, not boolean"},
      {param("{ type = 'integer' }"), "param 'x': unknown type 'integer'"},
      {param("{ required = 'yes' }"), "param 'x': 'required' must be true or false, not string"},
      {param("{ secret = 1 }"), "param 'x': 'secret' must be true or false, not number"},
      {param("{ type = 'int', default = 1e300 }"), "param 'x': default is not an integer"},
      {param("{ type = 'number', default = 'nan' }"), "param 'x': default is not a finite number"},
      {param("{ type = 'duration', default = '' }"), "param 'x': default is not a duration"},
      {"runbook{ name = 7, version = 1.5 }" + ok_step,
       "'name' must be a string, not number; 'version' must be a string, not number"},
      {"runbook{ name = 't', version = '1.0.0', tags = 'ops' }" + ok_step,
       "'tags' must be a list of strings"},
      {"runbook{ name = 't', version = '1.0.0', params = { ['a b'] = {} } }" + ok_step,
       "param 'a b': a name is"},
  };
  for (const auto& c : cases) {
    auto f = e.file(c.decl);
    auto r = run_cli({"check", f}, e.env());
    EXPECT_EQ(r.code, 2) << c.decl << "\n" << r.out << r.err;
    EXPECT_TRUE(has(r.err, c.says)) << c.decl << "\n  wanted: " << c.says << "\n  got: " << r.err;
  }
}

TEST(Inputs, ParametersAreCheckedNotCoerced) {
  Env e;
  auto f = e.file(R"(runbook{ name = "t", version = "1.0.0", params = {
  x = { type = "number", default = 1.5 },
  n = { type = "int", default = 3 },
  l = { type = "list", default = {} },
  level = { type = "string", default = "L1", choices = { "L1", "L2" } },
} }
step("a", function(p)
  log.info("x=" .. p.x .. " n=" .. p.n .. " list=" .. #p.l .. ":" .. tostring(p.l[1]) .. " level=" .. p.level)
end)
)");
  auto r = run_cli({"exec", f}, e.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "x=1.5 n=3 list=0:nil level=L1")) << r.out;
  r = run_cli({"exec", f, "-p", "l=a, b", "-p", "x=-2e3", "-p", "n=-7", "-p", "level=L2"}, e.env());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "x=-2000.0 n=-7 list=2:a level=L2")) << r.out;
  struct Case {
    std::string param, says;
  };
  for (const Case& c : {Case{"x=nan", "parameter 'x' must be a finite number, got 'nan'"},
                        Case{"x=inf", "parameter 'x' must be a finite number, got 'inf'"},
                        Case{"x=-infinity", "parameter 'x' must be a finite number"},
                        Case{"x=1e999", "parameter 'x' must be a finite number"},
                        Case{"x= 5", "parameter 'x' must be a finite number"},
                        Case{"x=0x10", "parameter 'x' must be a finite number"},
                        Case{"n=99999999999999999999", "parameter 'n' must be an integer"},
                        Case{"n=3.5", "parameter 'n' must be an integer"},
                        Case{"level=L3", "parameter 'level' must be one of L1, L2"}}) {
    r = run_cli({"exec", f, "-p", c.param}, e.env());
    EXPECT_EQ(r.code, 2) << c.param << r.out << r.err;
    EXPECT_TRUE(has(r.err, c.says)) << c.param << ": " << r.err;
  }
  // What the journal kept: no null standing for a number.
  auto shown = run_cli({"show", "last", "--json"}, e.env());
  EXPECT_FALSE(has(shown.out, "\"x\":null")) << shown.out;
}

// Effect arguments: a duration that is empty, not a string or number, negative or beyond any
// clock, or an integer that cannot be one, is a bad argument naming the effect.
TEST(Inputs, EffectDurationsAndIntegersAreChecked) {
  Env e;
  struct Case {
    std::string call, says;
  };
  for (const Case& c :
       {Case{"exec{ 'true', timeout = '' }",
             "bad argument 'timeout' to 'exec' (duration like \"30s\" expected, got \"\")"},
        Case{"exec{ 'true', timeout = true }",
             "bad argument 'timeout' to 'exec' (duration like \"30s\" expected, got boolean)"},
        Case{"exec{ 'true', timeout = -5 }",
             "bad argument 'timeout' to 'exec' (duration like \"30s\" expected, got integer -5)"},
        Case{"exec{ 'true', timeout = 1e300 }",
             "bad argument 'timeout' to 'exec' (duration like \"30s\" expected"},
        Case{"proc.find{ pid = 2^63 }", "bad argument 'pid' to 'proc.find' (integer expected"},
        Case{"proc.find{ pid = 2^40 }", "bad argument 'pid' to 'proc.find'"}}) {
    auto f = e.file(std::string(kHead) + "step('a', function() " + c.call + " end)\n");
    auto r = run_cli({"exec", f}, e.env());
    EXPECT_EQ(r.code, 2) << c.call << r.out << r.err;
    EXPECT_TRUE(has(r.out, "rb.lua:2: " + c.says)) << c.call << "\n" << r.out;
  }
  auto f = e.file(std::string(kHead) + "step('a', function() exec{ 'true', timeout = 2.5 } end)\n");
  EXPECT_EQ(run_cli({"exec", f}, e.env()).code, 0) << "a number of seconds is still a duration";
}
