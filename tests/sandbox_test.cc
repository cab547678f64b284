// The sandbox: every escape attempted, each refused with a clear message and no crash; runaway
// loops stopped even inside pcall; the memory ceiling holds.
#include <gtest/gtest.h>

#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

std::string rb_with(const std::string& body) {
  return "runbook { name = 'sb', version = '1.0.0' }\nstep('s', function(p)\n" + body + "\nend)\n";
}

// Runs `body` in a step; returns the step's error ("" if it succeeded).
std::string step_error(const std::string& body, const std::string& timeout = "") {
  TempDir d;
  std::string code = timeout.empty()
                         ? rb_with(body)
                         : "runbook { name = 'sb', version = '1.0.0' }\nstep{ 's', timeout = '" +
                               timeout + "', run = function(p)\n" + body + "\nend }\n";
  auto r = run_lua(d.path(), code);
  if (r.result.exit_code == kExitOk) return "";
  return r.events.step_errors.empty() ? r.result.error : r.events.step_errors.front();
}

}  // namespace

TEST(Sandbox, DangerousGlobalsDoNotExist) {
  for (const char* name : {"io", "os", "debug", "package", "dofile", "loadfile", "collectgarbage",
                           "loadstring", "module"}) {
    std::string err = step_error(std::string("local x = ") + name);
    EXPECT_NE(err.find(std::string("undefined global '") + name + "'"), std::string::npos)
        << name << ": " << err;
  }
}

TEST(Sandbox, UndefinedGlobalIsAnErrorWithFileAndLine) {
  std::string err = step_error("local x = 1\nif pirnt then end");
  EXPECT_NE(err.find("rb.lua:4: undefined global 'pirnt'"), std::string::npos) << err;
}

TEST(Sandbox, StringDumpIsUnreachable) {
  std::string err = step_error("local s = ('x').dump(function() end)");
  EXPECT_NE(err.find("dump"), std::string::npos) << err;  // attempt to call a nil value (field 'dump')
  EXPECT_EQ(step_error("assert(string.dump == nil)"), "");
}

TEST(Sandbox, BinaryChunksAreRefused) {
  // A binary chunk starts with ESC "Lua"; load refuses mode "b" and binary text alike.
  std::string err = step_error("local f, e = load('\\27Lua', 'x', 'b')");
  EXPECT_NE(err.find("binary chunks are not allowed"), std::string::npos) << err;
  EXPECT_EQ(step_error("local f, e = load('\\27LuaT\\0') assert(f == nil and e:find('binary'))"), "");
}

TEST(Sandbox, LoadOfTextRunsInTheSandbox) {
  EXPECT_EQ(step_error("local f = load('return 1 + 1') assert(f() == 2)"), "");
  std::string err = step_error("local f = load('return io') f()");
  EXPECT_NE(err.find("undefined global 'io'"), std::string::npos) << err;
}

TEST(Sandbox, RequireFindsOnlyLuaSourceBesideTheRunbookAndInStdlib) {
  TempDir d;
  write_file(d / "helpers.lua", "return { answer = 42 }");
  auto ok = run_lua(d.path(), rb_with("assert(require('helpers').answer == 42)"));
  EXPECT_EQ(ok.result.exit_code, 0) << ok.result.error;
  auto missing = run_lua(d.path(), rb_with("require('socket')"));
  EXPECT_NE(missing.result.error.find("module 'socket' not found"), std::string::npos) << missing.result.error;
  auto traversal = run_lua(d.path(), rb_with("require('../../etc/passwd')"));
  EXPECT_NE(traversal.result.error.find("bad module name"), std::string::npos) << traversal.result.error;
}

TEST(Sandbox, RunawayLoopStopsAtTheStepDeadlineEvenInsidePcall) {
  auto t0 = std::chrono::steady_clock::now();
  std::string err = step_error("while true do pcall(function() while true do end end) end", "300ms");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(err.find("exceeded its timeout of 300ms"), std::string::npos) << err;
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(Sandbox, RunawayInCoroutineIsStoppedToo) {
  std::string err = step_error(
      "local co = coroutine.wrap(function() while true do end end)\n"
      "while true do pcall(co) end", "300ms");
  EXPECT_NE(err.find("exceeded its timeout"), std::string::npos) << err;
}

TEST(Sandbox, MemoryCeilingStopsAHog) {
  std::string err = step_error("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end");
  EXPECT_NE(err.find("memory"), std::string::npos) << err;
}

TEST(Sandbox, EffectsOnlyInsideSteps) {
  TempDir d;
  auto r = run_lua(d.path(), "runbook { name = 'x', version = '1.0.0' }\nfs.exists('/')\nstep('s', function() end)\n");
  EXPECT_EQ(r.result.exit_code, kExitUsage);
  EXPECT_NE(r.result.error.find("outside a step"), std::string::npos) << r.result.error;
}

TEST(Sandbox, DeclarationErrorsAreClear) {
  TempDir d;
  auto r = run_lua(d.path(), "runbook { name = 'x', version = 'one', nmae = 1 }\nstep('s', function() end)\n");
  EXPECT_EQ(r.result.exit_code, kExitUsage);
  EXPECT_NE(r.result.error.find("version 'one' is not semver"), std::string::npos) << r.result.error;
  EXPECT_NE(r.result.error.find("unknown field 'nmae'"), std::string::npos) << r.result.error;
  auto none = run_lua(d.path(), "step('s', function() end)\n");
  EXPECT_NE(none.result.error.find("no runbook{"), std::string::npos) << none.result.error;
  auto nosteps = run_lua(d.path(), "runbook { name = 'x', version = '1.0.0' }\n");
  EXPECT_NE(nosteps.result.error.find("declares no step"), std::string::npos);
}

TEST(Sandbox, BadArgumentsNameThePrimitiveAndTheArgument) {
  std::string err = step_error("http.get{ url = 'http://127.0.0.1:1/', timeout = 'soon' }");
  EXPECT_NE(err.find("bad argument 'timeout' to 'http.get' (duration like \"30s\" expected, got \"soon\")"),
            std::string::npos) << err;
  err = step_error("fs.backup{ pth = '/tmp' }");
  EXPECT_NE(err.find("bad argument 'pth' to 'fs.backup' (unknown argument"), std::string::npos) << err;
  err = step_error("exec{ 'true', cwd = function() end }");
  EXPECT_NE(err.find("cwd"), std::string::npos) << err;
  err = step_error("fs.exists()");
  EXPECT_NE(err.find("bad argument 'path' to 'fs.exists' (path expected, got nil)"), std::string::npos) << err;
}

TEST(Sandbox, ErrorsAreCatchableTablesWithTheEffectName) {
  EXPECT_EQ(step_error(R"(
    local ok, err = pcall(exec, { "false" })
    assert(not ok)
    assert(err.effect == "exec", tostring(err.effect))
    assert(err.result.code == 1)
    assert(tostring(err):find("exec: 'false' exited 1"), tostring(err))
  )"), "");
}

TEST(Sandbox, CheckFalseReturnsTheFailure) {
  EXPECT_EQ(step_error(R"(
    local r = exec{ "sh", "-c", "echo out; exit 4", check = false }
    assert(r.ok == false and r.code == 4 and r.stdout == "out\n", json.encode(r))
  )"), "");
}

// Found by fuzz_json: two equal tables built in different orders iterate differently, so
// json.encode must not follow lua_next. The same value gives the same text, keys sorted.
TEST(Sandbox, JsonEncodeIsTheSameForEqualTables) {
  EXPECT_EQ(step_error(R"(
    local a = { ["1~"] = "a" }; a[","] = "b"
    local b = { [","] = "b" };  b["1~"] = "a"
    local t = json.decode('{"1~": "a", ",": "b"}')
    assert(json.encode(a) == '{",":"b","1~":"a"}', json.encode(a))
    assert(json.encode(b) == json.encode(a), json.encode(b))
    assert(json.encode(t) == json.encode(a), json.encode(t))
    local keys = {}
    for i = 1, 200 do keys["k" .. (i * 7919 % 211)] = i end
    local once = json.encode(keys)
    assert(json.encode(json.decode(once)) == once)
  )"),
            "");
}
