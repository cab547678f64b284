// The Lua layer against hostile runbooks and answers, each through the real binary with a hard
// wall-clock bound: it ends with exit 1 or 2 and a clear message, never a signal, and the
// journal's run is never left "running".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/support.h"

using namespace rb::test;

namespace {

using Clock = std::chrono::steady_clock;

const char* kHead = "runbook { name = 'hostile', version = '1.0.0' }\n";

struct Outcome {
  CliResult cli;
  double seconds = 0;
  std::string runs;  // `runbook runs --json` afterwards
  std::string all() const { return cli.out + cli.err; }
};

// Runs <dir>/rb.lua (written from `code`) with `exec` and a journal in dir; the test's own
// timeout is far above the bound so that a hang shows as a failed bound, not a stuck test.
Outcome run_hostile(const TempDir& dir, const std::string& code,
                    const std::vector<std::string>& extra = {}) {
  write_file(dir / "rb.lua", code);
  std::map<std::string, std::string> env{{"RUNBOOK_JOURNAL", dir / "journal.db"}};
  std::vector<std::string> args{"exec", dir / "rb.lua"};
  args.insert(args.end(), extra.begin(), extra.end());
  Outcome o;
  auto t0 = Clock::now();
  o.cli = run_cli(args, env, 40);
  o.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  o.runs = run_cli({"runs", "--json"}, env).out;
  return o;
}

// What every hostile case must show, whatever else it checks.
void expect_clean_stop(const Outcome& o, double bound_s, const std::string& message) {
  EXPECT_TRUE(o.cli.code == 1 || o.cli.code == 2) << "exit " << o.cli.code << "\n" << o.all();
  EXPECT_LT(o.seconds, bound_s) << o.all();
  EXPECT_EQ(o.all().find("[test: runbook timed out]"), std::string::npos) << o.all();
  EXPECT_NE(o.runs.find("\"outcome\":"), std::string::npos) << "not journaled: " << o.runs;
  EXPECT_EQ(o.runs.find("\"outcome\":\"running\""), std::string::npos) << o.runs;
  EXPECT_NE(o.all().find(message), std::string::npos) << "expected '" << message << "' in:\n"
                                                      << o.all();
}

std::string nested_brackets(int depth) {
  return std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']');
}

// A one-answer HTTP server: every GET gets the bytes of <dir>/body.
class FileServer {
 public:
  FileServer(const std::string& dir, const std::string& body)
      : port_(free_port()), child_(start(dir, body, port_)) {
    if (!wait_for_port(port_, 10'000))
      ADD_FAILURE() << "python3 http server did not start "
                       "(apt-get install python3)";
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

 private:
  static Child start(const std::string& dir, const std::string& body, int port) {
    write_file(dir + "/body", body);
    write_file(dir + "/server.py", R"(import http.server, sys
body = open(sys.argv[2], 'rb').read()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
)");
    return Child({"python3", dir + "/server.py", std::to_string(port), dir + "/body"});
  }
  int port_;
  Child child_;
};

}  // namespace

// --- Lua <-> JSON: bounded both ways --------------------------------------------------------

TEST(LuaHardening, AnHttpAnswerOfDeepBracketsIsRefusedNotASegfault) {
  TempDir d;
  FileServer server(d.path(), nested_brackets(200'000));
  std::string code = std::string(kHead) +
                     "step('probe', function()\n"
                     "  local r = http.get{ url = '" +
                     server.url() +
                     "' }\n"
                     "  log.info(r.json == nil and 'no json field' or 'json field')\n"
                     "  json.decode(r.body)\n"
                     "end)\n";
  for (std::vector<std::string> mode : {std::vector<std::string>{}, {"--dry-run"}}) {
    auto o = run_hostile(d, code, mode);
    expect_clean_stop(o, 20, "json.decode: json: nested deeper than 200 levels");
    EXPECT_NE(o.all().find("no json field"), std::string::npos) << o.all();
  }
}

TEST(LuaHardening, JsonDecodeIsBoundedAt200Levels) {
  TempDir d;
  auto o = run_hostile(d, std::string(kHead) +
                              "step('s', function()\n"
                              "  assert(#json.decode('" +
                              nested_brackets(200) +
                              "') == 1)\n"
                              "  json.decode(string.rep('[', 100000) .. string.rep(']', 100000))\n"
                              "end)\n");
  expect_clean_stop(o, 10, "rb.lua:4: json.decode: json: nested deeper than 200 levels");
  auto one_more = run_hostile(d, std::string(kHead) + "step('s', function() json.decode('" +
                                     nested_brackets(201) + "') end)\n");
  expect_clean_stop(one_more, 10, "json: nested deeper than 200 levels");
}

TEST(LuaHardening, JsonEncodeOfDeepOrCyclicTablesIsAnError) {
  TempDir d;
  // 17 and 30 levels used to overrun the Lua stack (an abort, a hang, a double free).
  auto fine = run_hostile(
      d, std::string(kHead) +
             "step('s', function()\n"
             "  for _, n in ipairs{ 17, 18, 30, 200 } do\n"
             "    local t = {} for i = 2, n do t = i % 2 == 0 and { k = t } or { t } end\n"
             "    assert(#json.encode(t) > n)\n"
             "  end\n"
             "  log.info('encoded')\n"
             "end)\n");
  EXPECT_EQ(fine.cli.code, 0) << fine.all();
  EXPECT_NE(fine.all().find("encoded"), std::string::npos) << fine.all();

  auto deep = run_hostile(d, std::string(kHead) +
                                 "step('s', function()\n"
                                 "  local t = {} for i = 1, 250 do t = { t } end\n"
                                 "  json.encode(t)\n"
                                 "end)\n");
  expect_clean_stop(deep, 10, "json: nested deeper than 200 levels");
  auto cycle = run_hostile(d, std::string(kHead) +
                                  "step('s', function()\n"
                                  "  local t = {} t.self = t\n"
                                  "  json.encode(t)\n"
                                  "end)\n");
  expect_clean_stop(cycle, 10, "json: nested deeper than 200 levels; a cycle?");
}

TEST(LuaHardening, DeepAndSharedEffectArgumentsEndInTime) {
  TempDir d;
  int port = free_port();  // nothing listens: a converted argument ends in a refused connection
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto twenty = run_hostile(d, std::string(kHead) +
                                   "step{ 's', timeout = '3s', run = function()\n"
                                   "  local t = { a = 1 } for i = 1, 20 do t = { t } end\n"
                                   "  http.post{ url = '" +
                                   url +
                                   "', json = t }\n"
                                   "end }\n");
  expect_clean_stop(twenty, 10, "http.post: POST " + url);

  auto deep = run_hostile(d, std::string(kHead) +
                                 "step('s', function()\n"
                                 "  local t = { a = 1 } for i = 1, 300 do t = { t } end\n"
                                 "  http.post{ url = '" +
                                 url +
                                 "', json = t }\n"
                                 "end)\n");
  expect_clean_stop(deep, 10,
                    "argument 'json' to 'http.post' is not JSON (json: nested deeper "
                    "than 200 levels");
  // One table shared at every level: 2^60 values if expanded. The budget (a million values) ends
  // it, well within the step's time even under ASan on a loaded machine.
  auto shared = run_hostile(d, std::string(kHead) +
                                   "step{ 's', timeout = '30s', run = function()\n"
                                   "  local t = { 1 } for i = 1, 60 do t = { t, t } end\n"
                                   "  http.post{ url = '" +
                                   url +
                                   "', json = t }\n"
                                   "end }\n");
  expect_clean_stop(shared, 10, "values (json: the same table many times over?)");
}

// --- step() only while declaring --------------------------------------------------------------

TEST(LuaHardening, StepInsideARunningStepIsARunbookError) {
  TempDir d;
  auto o = run_hostile(
      d, std::string(kHead) +
             "step('outer', function()\n"
             "  for i = 1, 100 do step('inner' .. i, function() end) end\n"
             "end)\n"
             "step{ 'cleanup', always = true, run = function() log.info('cleanup ran') end }\n");
  expect_clean_stop(o, 10, "rb.lua:3: step() may be called only at the top level of the runbook");
  EXPECT_NE(o.all().find("cleanup ran"), std::string::npos) << o.all();
}

// --- host calls into Lua are protected --------------------------------------------------------

TEST(LuaHardening, AnErrorObjectWhoseTostringFailsIsReported) {
  TempDir d;
  // A __tostring that loops is stopped by the step's deadline, which it then overran.
  for (auto [tostring, message] : std::vector<std::pair<std::string, std::string>>{
           {"error('boom')",
            "a table error value whose __tostring failed: " + d / "rb.lua:3: boom"},
           {"return {}", "a table error value whose __tostring failed: '__tostring' must return"},
           {"while true do end", "step 'a' exceeded its timeout of 1.0s"}}) {
    auto o = run_hostile(
        d, std::string(kHead) +
               "step{ 'a', timeout = '1s', run = function()\n"
               "  error(setmetatable({}, { __tostring = function() " +
               tostring +
               " end }))\nend }\n"
               "step{ 'c', always = true, run = function() log.info('cleanup ran') end }\n");
    expect_clean_stop(o, 5, message);
    EXPECT_NE(o.all().find("cleanup ran"), std::string::npos) << tostring << "\n" << o.all();
  }
  auto decl = run_hostile(d, std::string(kHead) +
                                 "error(setmetatable({}, { __tostring = "
                                 "function() error('boom') end }))\n");
  expect_clean_stop(decl, 5, "__tostring failed");
}

TEST(LuaHardening, ARunbookThatReplacesMathStillRuns) {
  TempDir d;
  for (const char* change : {"math = nil", "math.randomseed = function() while true do end end",
                             "math.randomseed = 5"}) {
    auto o = run_hostile(
        d, std::string(kHead) + change + "\nstep('a', function() log.info('the step ran') end)\n");
    EXPECT_EQ(o.cli.code, 0) << change << "\n" << o.all();
    EXPECT_LT(o.seconds, 5) << change;
    EXPECT_NE(o.all().find("the step ran"), std::string::npos) << o.all();
  }
}

// --- nothing escapes the deadline ------------------------------------------------------------

TEST(LuaHardening, AnXpcallHandlerThatLoopsStopsAtTheDeadline) {
  TempDir d;
  auto o = run_hostile(
      d, std::string(kHead) +
             "step{ 'a', timeout = '1s', run = function()\n"
             "  while true do xpcall(function() while true do end end,\n"
             "                       function() while true do end end) end\n"
             "end }\n"
             "step{ 'c', always = true, run = function() log.info('cleanup ran') end }\n");
  expect_clean_stop(o, 3, "step 'a' exceeded its timeout of 1.0s");
  EXPECT_NE(o.all().find("cleanup ran"), std::string::npos) << o.all();
  // In a coroutine, and with an error that the handler sees first.
  auto co = run_hostile(d, std::string(kHead) +
                               "step{ 'a', timeout = '1s', run = function()\n"
                               "  local co = coroutine.wrap(function()\n"
                               "    xpcall(error, function() while true do end end, 'x') end)\n"
                               "  while true do pcall(co) co = coroutine.wrap(function()\n"
                               "    xpcall(error, function() while true do end end, 'x') end) end\n"
                               "end }\n");
  expect_clean_stop(co, 3, "exceeded its timeout of 1.0s");
}

TEST(LuaHardening, AnXpcallLoopWhileDeclaringStopsAtTheDeclarationLimit) {
  TempDir d;
  auto o = run_hostile(
      d, std::string(kHead) +
             "xpcall(function() while true do end end, function() while true do end end)\n"
             "step('a', function() end)\n");
  expect_clean_stop(o, 12, "declaring the runbook took longer than 10s");
  EXPECT_EQ(o.cli.code, 2);
}

TEST(LuaHardening, GcFinalizersAreRefused) {
  TempDir d;
  auto o = run_hostile(d, std::string(kHead) +
                              "step{ 'a', timeout = '1s', run = function()\n"
                              "  setmetatable({}, { __gc = function() while true do end end })\n"
                              "end }\n");
  expect_clean_stop(o, 3, "rb.lua:3: setmetatable: __gc finalizers are not allowed");
  // A __gc added after setmetatable is never called by Lua: the run ends, and exits.
  auto late = run_hostile(d, std::string(kHead) +
                                 "local mt = {} keep = setmetatable({}, mt)\n"
                                 "mt.__gc = function() while true do end end\n"
                                 "step('a', function() setmetatable({}, mt) end)\n");
  expect_clean_stop(late, 3, "__gc finalizers are not allowed");
  // Nor through the metatable the host gives every error it raises.
  auto shared = run_hostile(d, std::string(kHead) +
                                   "step{ 'a', timeout = '1s', run = function()\n"
                                   "  local ok, err = pcall(exec, { 'false' })\n"
                                   "  getmetatable(err).__gc = function() while true do end end\n"
                                   "end }\n");
  expect_clean_stop(shared, 3, "rb.lua:4: attempt to index a string value");
}

TEST(LuaHardening, CloseHandlersThatLoopStopAtTheDeadline) {
  TempDir d;
  auto o = run_hostile(
      d,
      std::string(kHead) +
          "step{ 'a', timeout = '1s', run = function()\n"
          "  local x <close> = setmetatable({}, { __close = function() while true do end end })\n"
          "  while true do end\n"
          "end }\n");
  expect_clean_stop(o, 3, "exceeded its timeout of 1.0s");
}

TEST(LuaHardening, AStepThatOverranItsDeadlineFailsEvenIfItsLastCallReturned) {
  TempDir d;
  // table.sort of a million numbers runs in C for a while: the count hook never sees the
  // deadline pass, and the step returns right after it. It must not be reported succeeded.
  auto o =
      run_hostile(d, std::string(kHead) +
                         "local t = {} for i = 1, 1000000 do t[i] = (i * 7919) % 1000003 end\n"
                         "step{ 'a', timeout = '100ms', run = function() table.sort(t) end }\n");
  expect_clean_stop(o, 10, "step 'a' exceeded its timeout of 100ms");
}

TEST(LuaHardening, TheFirstCtrlCStopsALoopingMessageHandler) {
  TempDir d;
  write_file(d / "rb.lua", std::string(kHead) +
                               "step('a', function()\n"
                               "  while true do xpcall(function() while true do end end,\n"
                               "                       function() while true do end end) end\n"
                               "end)\n");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (d / "journal.db").c_str(), 1);
    int fd = ::open("/dev/null", O_WRONLY);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", (d / "rb.lua").c_str(), nullptr);
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // well inside the loop
  ::kill(pid, SIGINT);
  auto t0 = Clock::now();
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         Clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  if (got == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "the first Ctrl-C did not stop the run within 5 s";
  }
  EXPECT_LT(took, 1.0);
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  auto runs = run_cli({"runs", "--json"}, {{"RUNBOOK_JOURNAL", d / "journal.db"}});
  EXPECT_NE(runs.out.find("\"outcome\":\"interrupted\""), std::string::npos) << runs.out;
}

// --- the memory ceiling is per step ------------------------------------------------------------

TEST(LuaHardening, TheMemoryCeilingDoesNotStopTheCleanupStep) {
  TempDir d;
  auto o =
      run_hostile(d, std::string(kHead) +
                         "step('hog', function()\n"
                         "  local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n"
                         "end)\n"
                         "step{ 'cleanup', always = true, run = function()\n"
                         "  local t = {} for i = 1, 100000 do t[i] = tostring(i) end\n"
                         "  log.info('cleanup ran')\n"
                         "end }\n");
  expect_clean_stop(o, 20, "memory ceiling of 256 MiB");
  EXPECT_NE(o.all().find("cleanup ran"), std::string::npos) << o.all();
  EXPECT_NE(o.runs.find("\"outcome\":\"failed\""), std::string::npos) << o.runs;
}

// --- require stays in stdlib/ and beside the runbook -------------------------------------------

TEST(LuaHardening, RequireRefusesASymlinkThatLeadsOutside) {
  TempDir d, outside;
  write_file(outside / "secret.lua", "return { leaked = true }");
  std::filesystem::create_symlink(outside / "secret.lua", d / "evil.lua");
  std::filesystem::create_directory(d / "lib");
  write_file(d / "lib/real.lua", "return { ok = true }");
  std::filesystem::create_symlink(d / "lib/real.lua", d / "alias.lua");  // inside: allowed
  auto o = run_hostile(d, std::string(kHead) +
                              "step('a', function()\n"
                              "  assert(require('alias').ok)\n"
                              "  require('evil')\n"
                              "end)\n");
  expect_clean_stop(o, 10,
                    "require: module 'evil' (" + d / "evil.lua" + ") resolves to " +
                        std::filesystem::canonical(outside / "secret.lua").string() +
                        ", outside stdlib/ and the runbook's directory");
  auto decl = run_hostile(d, std::string(kHead) + "require('evil')\nstep('a', function() end)\n");
  expect_clean_stop(decl, 10, "outside stdlib/ and the runbook's directory");
  EXPECT_EQ(decl.cli.code, 2);
}

TEST(LuaHardening, RequireCyclesAndModuleErrorsAreClear) {
  TempDir d;
  write_file(d / "a.lua", "return require('b')");
  write_file(d / "b.lua", "return require('a')");
  write_file(d / "bad.lua", "error('bad module', 0)");
  auto o = run_hostile(d, std::string(kHead) +
                              "step('a', function()\n"
                              "  local ok, err = pcall(require, 'bad')\n"
                              "  assert(not ok and err == 'bad module', tostring(err))\n"
                              "  require('a')\n"
                              "end)\n");
  expect_clean_stop(o, 10, "require: module 'a' requires itself (a cycle)");
}
