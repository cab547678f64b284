// Every exit status from a real runbook through the real binary: 0 succeeded; 1 the procedure
// failed (error(), assert(), a failing effect); 2 a runbook bug found at run time (a misspelled
// primitive, an undefined global, an undefined parameter, a bad argument, step() inside a step,
// calling a nil value, a primitive outside a step); 3 a resume stopped at a change in doubt; 4 a
// lock held by another run; and --json's run_end carries the code and its kind. (130: see
// cleanup_test.cc.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/support.h"

namespace rb::test {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Env {
  TempDir dir;
  std::map<std::string, std::string> env() const {
    return {{"RUNBOOK_JOURNAL", dir / "j.db"}, {"NO_COLOR", "1"}};
  }
  // Writes the runbook (with `cleanup` = an always step writing dir/cleaned) and runs it.
  CliResult run(const std::string& body, std::vector<std::string> extra = {}) {
    std::string file = dir / "rb.lua";
    write_file(file, "runbook{ name = \"exits\", version = \"1.0.0\", params = {\n"
                     "  root = { type = \"string\", default = \"/tmp\" },\n"
                     "  app = { type = \"string\" },\n"
                     "  port = { type = \"int\", default = 8080 } } }\n" +
                         body +
                         "\nstep{ name = \"cleanup\", always = true, run = function()\n"
                         "  fs.write{ path = \"" + (dir / "cleaned") + "\", content = \"yes\" }\n"
                         "end }\n");
    std::vector<std::string> args{"exec", file};
    for (auto& a : extra) args.push_back(a);
    ::unlink((dir / "cleaned").c_str());
    return run_cli(args, env());
  }
  bool cleaned() const { return ::access((dir / "cleaned").c_str(), F_OK) == 0; }
  json run_end(const CliResult& r) const {
    for (const auto& e : r.events())
      if (e.value("type", "") == "run_end") return e;
    return nullptr;
  }
  json last_run() {
    auto show = run_cli({"show", "last", "--json"}, env());
    return json::parse(show.out, nullptr, false);
  }
};

TEST(ExitStatus, SucceededIsZeroAndDeclaredOptionalParamsReadAsNil) {
  Env e;
  auto r = e.run(R"(step("ok", function(p)
  assert(p.app == nil, "an optional param without a value is nil")
  assert(p.root == "/tmp" and p.port == 8080)
end))");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto j = e.run(R"(step("ok", function(p) local _ = p.app end))", {"--json"});
  EXPECT_EQ(j.code, 0);
  auto end = e.run_end(j);
  EXPECT_EQ(end["exit_code"], 0) << j.out;
  EXPECT_EQ(end["kind"], "succeeded");
  EXPECT_FALSE(end.contains("cleanup")) << "nothing went wrong: no cleanup list";
}

TEST(ExitStatus, ErrorAndAssertAndAFailingEffectAreOne) {
  Env e;
  auto r = e.run(R"(step("stop", function() error("the queue is not empty") end))");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "the queue is not empty")) << r.out;
  EXPECT_TRUE(e.cleaned());

  r = e.run(R"(step("check", function() assert(1 == 2, "versions differ") end))", {"--json"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(e.run_end(r)["kind"], "failed");
  EXPECT_EQ(e.run_end(r)["exit_code"], 1);

  r = e.run(R"(step("run", function() exec{ "false" } end))", {"--json"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(e.run_end(r)["kind"], "failed");
  EXPECT_EQ(e.run_end(r)["outcome"], "failed");
  EXPECT_TRUE(e.cleaned());
  auto run = e.last_run();
  EXPECT_EQ(run["exit_code"], 1);
  EXPECT_EQ(run["extra"]["kind"], "failed");

  // Bad data from outside is the procedure failing too, not a bug.
  r = e.run(R"(step("parse", function() json.decode("{not json") end))");
  EXPECT_EQ(r.code, 1) << r.out;

  // An effect's error re-raised by the runbook is still the procedure failing.
  r = e.run(R"(step("run", function()
  local ok, err = pcall(exec, { "false" })
  error(err)
end))");
  EXPECT_EQ(r.code, 1) << r.out;
}

struct BugCase {
  const char* body;
  const char* message;
};

TEST(ExitStatus, RunbookBugsFoundAtRunTimeAreTwoAndTheCleanupStillRuns) {
  const BugCase cases[] = {
      {R"(step("backup", function() fs.bakup("/etc/hosts") end))",
       "fs.bakup is not a primitive (fs has: backup, copy"},
      {R"(step("use", function() local n = undefined_thing + 1 end))",
       "rb.lua:5: undefined global 'undefined_thing'"},
      {R"(step("param", function(p) if p.rooot then log.info("x") end end))",
       "rb.lua:5: undefined parameter 'rooot' (declared: app, port, root)"},
      {R"(step("bad", function() sleep("soon") end))", "bad argument"},
      {R"(step("outer", function() step("inner", function() end) end))",
       "step() may be called only at the top level"},
      {R"(step("nil", function() local t = {} t.restart() end))", "attempt to call a nil value"},
      {R"(step("lib", function() string.rep() end))", "bad argument #1 to 'rep'"},
      // A bug the runbook caught with pcall and raised again is still a bug.
      {R"(step("again", function()
  local ok, err = pcall(function() sleep{ seconds = 1 } end)
  error(err)
end))",
       "bad argument"},
  };
  for (const auto& c : cases) {
    Env e;
    auto r = e.run(c.body, {"--json"});
    SCOPED_TRACE(c.body);
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    json end = e.run_end(r);
    ASSERT_TRUE(end.is_object()) << r.out << r.err;
    EXPECT_EQ(end["exit_code"], 2);
    EXPECT_EQ(end["kind"], "bug");
    EXPECT_EQ(end["outcome"], "error");
    EXPECT_TRUE(has(end.value("error", ""), c.message)) << end.dump();
    EXPECT_TRUE(has(end.value("error", ""), "a bug in the runbook")) << end.dump();
    EXPECT_TRUE(e.cleaned()) << "the always step ran after the bug";
    auto run = e.last_run();
    EXPECT_EQ(run["exit_code"], 2);
    EXPECT_EQ(run["outcome"], "error");
    EXPECT_EQ(run["extra"]["kind"], "bug");
    ASSERT_TRUE(run["extra"]["cleanup"].is_array()) << run.dump();
    EXPECT_EQ(run["extra"]["cleanup"][0]["name"], "cleanup");
    EXPECT_EQ(run["extra"]["cleanup"][0]["outcome"], "succeeded");
  }
  // Human output says the same, with the code.
  Env e;
  auto r = e.run(R"(step("backup", function() fs.bakup("/etc/hosts") end))");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.out, "✗ error")) << r.out;
  EXPECT_TRUE(has(r.out, "(exit 2)")) << r.out;
}

TEST(ExitStatus, ABugIsNotRetried) {
  Env e;
  auto r = e.run(R"(step{ name = "typo", retries = 3, retry_delay = "2s", run = function()
  fs.bakup("/etc/hosts")
end })");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_FALSE(has(r.out, "retrying")) << r.out;
}

TEST(ExitStatus, APrimitiveOutsideAStepIsTwo) {
  Env e;
  auto r = e.run(R"(time.now()
step("a", function() end))");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "outside a step")) << r.err;
}

TEST(ExitStatus, ChangeInDoubtIsThreeAndAssumeDoneGivesUnknownsNotInventedNumbers) {
  Env e;
  std::string file = e.dir / "doubt.lua";
  write_file(file, R"(runbook{ name = "doubt", version = "1.0.0" }
step("run", function()
  local r = exec{ "true" }
  log.info("assumed=" .. tostring(r.assumed) .. " code=" .. tostring(r.code))
end)
)");
  auto env = e.env();
  env["RUNBOOK_CRASH_AT"] = "before:1";
  ASSERT_EQ(run_cli({"exec", file}, env).code, 128 + SIGKILL);
  env.erase("RUNBOOK_CRASH_AT");
  auto r = run_cli({"resume", "last"}, env);
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "--assume-done")) << r.err;
  auto j = run_cli({"resume", "last", "--json"}, env);
  EXPECT_EQ(j.code, 3) << j.out;
  bool in_doubt = false;
  for (const auto& ev : j.events()) in_doubt = in_doubt || ev.value("type", "") == "in_doubt";
  EXPECT_TRUE(in_doubt) << j.out;

  auto a = run_cli({"resume", "last", "--assume-done", "--json"}, env);
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_TRUE(has(a.out, "assumed=true")) << a.out;
  // The exit code is not known: not a made-up 0.
  EXPECT_FALSE(has(a.out, "code=0")) << a.out;
  auto show = run_cli({"show", "last", "--json"}, env);
  json run = json::parse(show.out, nullptr, false);
  ASSERT_TRUE(run.is_object()) << show.out;
  json result;
  for (const auto& ef : run["effects"])
    if (ef.value("name", "") == "exec") result = ef["result"];
  ASSERT_TRUE(result.is_object()) << show.out;
  EXPECT_EQ(result["assumed"], true);
  EXPECT_EQ(result["code"], json({{"$unknown", "exec assumed done with --assume-done"}}));
  EXPECT_TRUE(result["stdout"].contains("$unknown")) << result.dump();
}

// A runbook process in the background.
struct Bg {
  pid_t pid = -1;
  Bg(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
     const std::string& out) {
    pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> a{const_cast<char*>(RUNBOOK_BIN)};
      for (const auto& s : args) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
  }
  ~Bg() {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

TEST(ExitStatus, ALockHeldByAnotherRunIsFour) {
  Env e;
  std::string file = e.dir / "lock.lua";
  write_file(file, R"(runbook{ name = "locked", version = "1.0.0" }
step("hold", function() fs.write{ path = ")" + (e.dir / "started") + R"(", content = "1" } sleep("20s") end)
)");
  Bg holder({"exec", file}, e.env(), e.dir / "holder.out");
  auto until = std::chrono::steady_clock::now() + 30s;
  while (::access((e.dir / "started").c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(::access((e.dir / "started").c_str(), F_OK), 0) << read_file(e.dir / "holder.out");
  auto r = run_cli({"exec", file, "--json"}, e.env());
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "\"exit_code\":4")) << r.out;
}

TEST(ExitStatus, HelpAndReadmeListTheTable) {
  auto h = run_cli({"--help"});
  EXPECT_EQ(h.code, 0);
  for (const char* s : {"Exit status:", "  3    stopped at a change in doubt", "  130  interrupted",
                        "undefined global or parameter"})
    EXPECT_TRUE(has(h.out, s)) << s << "\n" << h.out;
  auto x = run_cli({"exec", "--help"});
  EXPECT_TRUE(has(x.out, "  4    refused without acting")) << x.out;
  std::string readme = read_file(std::string(RUNBOOK_SOURCE_DIR) + "/README.md");
  EXPECT_TRUE(has(readme, "| 3 | `in_doubt` |")) << "README's exit status table";
}

}  // namespace
}  // namespace rb::test
