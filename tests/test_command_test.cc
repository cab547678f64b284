// `runbook test` tests itself: the test files in tests/rbtest/ (passing and failing cases, fakes,
// faults, the crash matrix), the output lines, the exit status, --json and --junit (parsed as
// XML), run through the real binary.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "support/support.h"

namespace rb::test {
namespace {

const std::string kDir = std::string(RUNBOOK_SOURCE_DIR) + "/tests/rbtest";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::map<std::string, std::string> env(const TempDir& d) {
  return {{"RUNBOOK_JOURNAL", d / "j.db"}, {"NO_COLOR", "1"}};
}

TEST(TestCommand, PassingCasesPassAndExitZero) {
  TempDir d;
  auto r = run_cli({"test", kDir + "/rollback_test.lua"}, env(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "ok    " + kDir + "/rollback_test.lua: rolls back to last-good and verifies\n")) << r.out;
  EXPECT_TRUE(has(r.out, "ok    " + kDir + "/rollback_test.lua: an unhealthy app keeps the queues paused\n"));
  EXPECT_TRUE(has(r.out, "ok    " + kDir + "/rollback_test.lua: a timeout stops the step as its deadline would\n"));
  EXPECT_TRUE(has(r.out, "\n6 passed, 0 failed\n")) << r.out;
  // Nothing was journaled where a user's runs go: every run under test has its own journal.
  EXPECT_FALSE(std::ifstream(d / "j.db").good());
}

TEST(TestCommand, FailingCasesNameTheAssertionAndTheDifference) {
  TempDir d;
  auto r = run_cli({"test", "--timeout", "2s", kDir + "/failing_test.lua"}, env(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  std::string f = kDir + "/failing_test.lua";
  EXPECT_TRUE(has(r.out, "ok    " + f + ": passes\n")) << r.out;
  EXPECT_TRUE(has(r.out, "FAIL  " + f + ": outcome differs: " + f + ":9: expected \"succeeded\", got \"failed\"\n")) << r.out;
  EXPECT_TRUE(has(r.out, "FAIL  " + f + ": called with other arguments: " + f +
                             ":14: no call of git.checkout with {ref = \"v9\"}; its calls: #3 {ref = \"last-good\"")) << r.out;
  EXPECT_TRUE(has(r.out, f + ":18: at .a.b[3]: expected 4, got 3")) << r.out;
  EXPECT_TRUE(has(r.out, f + ":23: attempt to index a nil value")) << r.out;
  EXPECT_TRUE(has(r.out, f + ":28: crash matrix: 2 of 2 boundaries: crash before effect #2 http.post: call #2 differs")) << r.out;
  EXPECT_TRUE(has(r.out, "FAIL  " + f + ": a fake that loops forever is stopped: " + f +
                             ":33: the case exceeded its time limit of 2.0s\n")) << r.out;
  EXPECT_TRUE(has(r.out, "\n1 passed, 6 failed\n")) << r.out;
}

TEST(TestCommand, CrashResumeAndCrashMatrix) {
  TempDir d;
  auto r = run_cli({"test", kDir + "/crash_test.lua"}, env(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "ok    " + kDir + "/crash_test.lua: the crash matrix of the rollback\n")) << r.out;
  EXPECT_TRUE(has(r.out, "4 passed, 0 failed")) << r.out;
}

TEST(TestCommand, DirectoryIsSearchedRecursively) {
  TempDir d;
  std::string sub = d / "a/b";
  std::filesystem::create_directories(sub);
  write_file(sub + "/x_test.lua", "local t = require 'runbook.test'\nt.case('one', function() t.eq(1, 1) end)\n");
  write_file(d / "a/helper.lua", "error('never loaded')\n");
  auto r = run_cli({"test", d / "a"}, env(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "ok    " + sub + "/x_test.lua: one\n")) << r.out;
  EXPECT_TRUE(has(r.out, "1 passed, 0 failed")) << r.out;
  auto none = run_cli({"test", d / "a/b/nothing"}, env(d));
  EXPECT_EQ(none.code, 2);
}

TEST(TestCommand, TestFileIsSandboxedAndBadFakesAreNamed) {
  TempDir d;
  std::string rb = d / "rb.lua";
  write_file(rb, "runbook{ name = 'x', version = '1.0.0' }\nstep('s', function() exec{ 'true' } end)\n");
  write_file(d / "s_test.lua",
             "local t = require 'runbook.test'\n"
             "t.case('no io', function() return io.open('/etc/passwd') end)\n"
             "t.case('no effects in a test', function() exec{ 'touch', '" + d / "touched" + "' } end)\n"
             "t.case('a typo in a fake', function() t.run('rb.lua', { fakes = { ['exce'] = {} } }) end)\n"
             "t.case('exec is faked', function()\n"
             "  local r = t.run('rb.lua', { fakes = { exec = { exit_code = 0, stdout = 'hi' } } })\n"
             "  t.eq(r.effects[1].result.stdout, 'hi')\n"
             "end)\n");
  auto r = run_cli({"test", d / "s_test.lua"}, env(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "no io: " + d / "s_test.lua" + ":2: undefined global 'io'")) << r.out;
  EXPECT_TRUE(has(r.out, "FAIL  " + d / "s_test.lua" + ": no effects in a test:")) << r.out;
  EXPECT_TRUE(has(r.out, "'exce' is not a primitive")) << r.out;
  EXPECT_TRUE(has(r.out, "ok    " + d / "s_test.lua" + ": exec is faked\n")) << r.out;
  EXPECT_FALSE(std::ifstream(d / "touched").good());
}

TEST(TestCommand, ManyCasesStayBounded) {
  TempDir d;
  write_file(d / "many_test.lua",
             "local t = require 'runbook.test'\n"
             "for i = 1, 100000 do t.case('c' .. i, function() t.eq(i, i) end) end\n");
  // (The output is read back from the JUnit file: run_cli keeps only the head of stdout.)
  auto r = run_cli({"test", "--junit", d / "many.xml", d / "many_test.lua"}, env(d), 300);
  EXPECT_EQ(r.code, 0) << r.err;
  std::string xml = read_file(d / "many.xml");
  size_t cases = 0;
  for (size_t at = 0; (at = xml.find("<testcase ", at)) != std::string::npos; ++at) ++cases;
  EXPECT_EQ(cases, 100000u);
  EXPECT_TRUE(has(xml, "<testsuites name=\"runbook test\" tests=\"100000\" failures=\"0\">"));
}

TEST(TestCommand, JsonEvents) {
  TempDir d;
  auto r = run_cli({"test", "--json", "--timeout", "2s", kDir + "/failing_test.lua"}, env(d));
  EXPECT_EQ(r.code, 1);
  auto ev = r.events();
  ASSERT_EQ(ev.size(), 8u) << r.out;
  EXPECT_EQ(ev[0]["type"], "case");
  EXPECT_EQ(ev[0]["name"], "passes");
  EXPECT_EQ(ev[0]["ok"], true);
  EXPECT_EQ(ev[1]["ok"], false);
  EXPECT_EQ(ev[1]["message"], kDir + "/failing_test.lua:9: expected \"succeeded\", got \"failed\"");
  EXPECT_EQ(ev[7]["type"], "summary");
  EXPECT_EQ(ev[7]["failed"], 6);
}

// Parses the JUnit file with Python's XML parser and prints what CI would read.
std::string junit_summary(const std::string& path) {
  std::string cmd =
      "python3 -c 'import sys, xml.etree.ElementTree as E\n"
      "r = E.parse(sys.argv[1]).getroot()\n"
      "print(r.tag, r.get(\"tests\"), r.get(\"failures\"))\n"
      "for s in r.iter(\"testsuite\"):\n"
      "  for c in s.iter(\"testcase\"):\n"
      "    f = c.find(\"failure\")\n"
      "    print(c.get(\"name\"), \"|\", \"ok\" if f is None else f.get(\"message\"))' " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "cannot run python3 (apt-get install python3)";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (rc != 0) out += "\n(python3 failed: install it with apt-get install python3)";
  return out;
}

TEST(TestCommand, JunitXmlParses) {
  TempDir d;
  std::string xml = d / "junit.xml";
  auto r = run_cli({"test", "--junit", xml, "--timeout", "2s", kDir + "/failing_test.lua",
                    kDir + "/rollback_test.lua"}, env(d));
  EXPECT_EQ(r.code, 1);
  std::string s = junit_summary(xml);
  EXPECT_TRUE(has(s, "testsuites 13 6\n")) << s;
  EXPECT_TRUE(has(s, "passes | ok\n")) << s;
  EXPECT_TRUE(has(s, "outcome differs | " + kDir + "/failing_test.lua:9: expected \"succeeded\", got \"failed\"\n")) << s;
  EXPECT_TRUE(has(s, "rolls back to last-good and verifies | ok\n")) << s;
}

TEST(TestCommand, FromRunWritesARegressionTest) {
  TempDir d;
  write_file(d / "rb.lua",
             "runbook{ name = 'incident', version = '1.0.0', params = {\n"
             "  token = { type = 'string', secret = true }, dir = { type = 'string' } } }\n"
             "step('s', function(p)\n"
             "  fs.write{ path = p.dir .. '/out.txt', content = 'auth ' .. p.token }\n"
             "  exec{ 'sh', '-c', 'exit 3' }\n"
             "end)\n");
  auto live = run_cli({"exec", d / "rb.lua", "-p", "dir=" + d.path()},
                      {{"RUNBOOK_JOURNAL", d / "j.db"}, {"NO_COLOR", "1"},
                       {"RUNBOOK_PARAM_TOKEN", "hunter2-secret"}});
  ASSERT_EQ(live.code, 1) << live.out << live.err;
  std::string test_file = d / "incident_test.lua";
  auto w = run_cli({"test", "--from-run", "last", "-o", test_file}, env(d));
  ASSERT_EQ(w.code, 0) << w.err;
  std::string text = read_file(test_file);
  EXPECT_FALSE(has(text, "hunter2")) << text;
  EXPECT_TRUE(has(text, "left out (the journal never had them): token")) << text;
  EXPECT_TRUE(has(text, "t.run(\"rb.lua\"")) << text;
  EXPECT_TRUE(has(text, "t.fail(\"'sh' exited 3\")")) << text;
  EXPECT_TRUE(has(text, "t.eq(r.outcome, \"failed\")")) << text;
  // The secret is given a test value; then the written test passes...
  std::string patched = text;
  patched.replace(patched.find("    params = {\n"), 15, "    params = {\n      token = \"test-token\",\n");
  write_file(test_file, patched);
  auto r = run_cli({"test", test_file}, env(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "1 passed, 0 failed")) << r.out;
  // ... and it fails once the runbook no longer behaves as it did.
  write_file(d / "rb.lua", read_file(d / "rb.lua").replace(read_file(d / "rb.lua").find("exec{"), 5, "log.info{"));
  auto changed = run_cli({"test", test_file}, env(d));
  EXPECT_EQ(changed.code, 1) << changed.out;
  EXPECT_TRUE(has(changed.out, "expected \"failed\", got")) << changed.out;
}

// Under test the clock is virtual: a wait.until that never holds fails at its timeout after its
// polls (not a busy loop for the real timeout), and the step's time says what it waited. A fake
// with ok = false for a checkable primitive is its failure: raised, or its result under check = false.
TEST(TestCommand, VirtualClockAndFailingResults) {
  TempDir d;
  write_file(d / "rb.lua",
             "runbook{ name = 'w', version = '1.0.0' }\n"
             "step('wait', function()\n"
             "  local t0 = time.now()\n"
             "  local ok, err = pcall(wait['until'], function() return http.get{ url = 'http://127.0.0.1:9/x', check = false }.status == 201 end,\n"
             "                        { timeout = '10m', interval = '1s', what = 'the job' })\n"
             "  log.info(string.format('waited %d s', math.floor(time.now() - t0)))\n"
             "  if not ok then error(err, 0) end\n"
             "end)\n"
             "step('check', function()\n"
             "  local c = pip.check{ venv = '/v', check = false }\n"
             "  log.info(tostring(c.ok) .. ' ' .. table.concat(c.problems or {}, ';') .. ' ' .. tostring(c.error))\n"
             "  pip.check{ venv = '/v' }\n"
             "end)\n");
  write_file(d / "w_test.lua",
             "local t = require 'runbook.test'\n"
             "t.case('a wait that never holds', function()\n"
             "  local r = t.run('rb.lua', { fakes = { ['http.get'] = { status = 503 } } })\n"
             "  t.eq(r.outcome, 'failed')\n"
             "  t.ok(r.error:find('the job did not hold within 600', 1, true), r.error)\n"
             "  t.ok(#r.effects < 200, #r.effects .. ' effects')\n"
             "  t.ok(r.logs[1].message == 'waited 600 s' or r.logs[1].message == 'waited 601 s', r.logs[1].message)\n"
             "end)\n"
             "t.case('ok = false is a failure', function()\n"
             "  local r = t.run('rb.lua', { fakes = { ['http.get'] = { status = 201 },\n"
             "    ['pip.check'] = { ok = false, problems = { 'a needs b' }, error = 'a needs b' } } })\n"
             "  t.eq(r.outcome, 'failed')\n"
             "  t.eq(r.logs[#r.logs].message, 'false a needs b pip.check: a needs b')\n"
             "  t.ok(r.error:find('pip.check: a needs b', 1, true), r.error)\n"
             "end)\n");
  auto r = run_cli({"test", "--timeout", "20s", d / "w_test.lua"}, env(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "2 passed, 0 failed")) << r.out;
}

}  // namespace
}  // namespace rb::test
