// One JSON convention (docs/json.md): every subcommand that takes --json prints one JSON object
// per line, each with "schema": 1 and a "type". Every command is run the way a user would, its
// whole standard output is checked line by line against docs/json-schema.json (with Debian's
// python3-jsonschema), and every example in docs/json.md is checked against the same schema.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// Validates each line of each file given: prints {"errors": [...], "types": {...}}.
const char* kValidate = R"py(
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
errors, types = [], {}
for path in sys.argv[2:]:
    label = open(path + ".label").read()
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            errors.append("%s line %d is not JSON (%s): %r" % (label, n, e, line[:200]))
            continue
        if not isinstance(obj, dict):
            errors.append("%s line %d is not an object" % (label, n))
            continue
        for err in v.iter_errors(obj):
            errors.append("%s line %d (%s): %s" % (label, n, obj.get("type"), err.message[:300]))
        types.setdefault(obj.get("type"), label)
print(json.dumps({"errors": errors, "types": types}))
)py";

// The examples of docs/json.md: the lines of its ```json blocks, each one object.
const char* kDocExamples = R"py(
import json, re, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
v = Draft202012Validator(schema)
text = open(sys.argv[2], encoding="utf-8").read()
errors, types = [], []
for block in re.findall(r"```json\n(.*?)```", text, re.S):
    for line in block.strip().splitlines():
        try:
            obj = json.loads(line)
        except ValueError as e:
            errors.append("not JSON: %r (%s)" % (line[:120], e))
            continue
        types.append(obj.get("type"))
        for err in v.iter_errors(obj):
            errors.append("%s: %s" % (obj.get("type"), err.message[:300]))
enum = schema["properties"]["type"]["enum"]
missing = [t for t in enum if t not in types]
print(json.dumps({"errors": errors, "missing": missing, "count": len(types)}))
)py";

struct World {
  TempDir dir;
  int n = 0;
  std::vector<std::string> outputs;
  std::map<std::string, std::string> env() const { return {{"RUNBOOK_JOURNAL", dir / "journal.db"}}; }
  // Runs the CLI and keeps its standard output for validation.
  CliResult run(const std::vector<std::string>& args, int expect_code, std::map<std::string, std::string> more = {}) {
    auto e = env();
    for (auto& [k, v] : more) e[k] = v;
    auto r = run_cli(args, e);
    std::string label;
    for (const auto& a : args) label += a + " ";
    EXPECT_EQ(r.code, expect_code) << label << "\n" << r.out << r.err;
    EXPECT_FALSE(r.out.empty()) << label << " printed nothing";
    std::string path = dir / ("out" + std::to_string(++n) + ".jsonl");
    write_file(path, r.out);
    write_file(path + ".label", label);
    outputs.push_back(path);
    return r;
  }
};

os::ProcessResult python(const std::vector<std::string>& args) {
  os::ProcessSpec s;
  s.argv = {"/usr/bin/python3"};
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  s.timeout = std::chrono::seconds(120);
  s.max_output = 16 << 20;
  return os::run_process(s);
}

}  // namespace

TEST(JsonConvention, EveryCommandPrintsOneTypedObjectPerLineThatTheSchemaAccepts) {
  World w;
  write_file(w.dir / "app/config.ini", "a=1\n");
  std::string book = w.dir / "book.lua";
  write_file(book, R"(runbook { name = "json-book", version = "1.0.0",
  params = { root = { type = "path", required = true }, fail = { type = "bool", default = false } } }
step("probe", function(p)
  if fs.exists(p.root .. "/config.ini") then log.info("config present") end
end)
step("change", function(p)
  fs.write(p.root .. "/out.txt", "written\n")
  if p.fail and not fs.exists(p.root .. "/ok") then error("told to fail") end
end)
)");
  std::string root = "root=" + w.dir / "app";
  w.run({"exec", book, "-p", root, "--json"}, 0);
  w.run({"exec", book, "-p", root, "--dry-run", "--json", "--save-plan", w.dir / "plan.json"}, 0);
  write_file(w.dir / "app/out.txt", "changed by hand\n");
  w.run({"exec", "--plan", w.dir / "plan.json", "--json"}, 4);  // drifted: refused
  write_file(w.dir / "broken.lua", "runbook { name = 'b', version = '1.0.0' }\nstep('x', function()\n");
  auto err = w.run({"exec", w.dir / "broken.lua", "--json"}, 2);
  EXPECT_TRUE(has(err.out, "\"type\":\"error\"")) << err.out;
  w.run({"exec", book, "-p", root, "-p", "fail=true", "--json"}, 1);
  write_file(w.dir / "app/ok", "");
  w.run({"resume", "last", "--json"}, 0);
  w.run({"replay", "last", "--json"}, 0);
  write_file(w.dir / "changed.lua", read_file(book) + "step('more', function(p) fs.write(p.root .. '/x', 'x') end)\n");
  w.run({"replay", "1", "--json", "--against", w.dir / "changed.lua"}, 1);  // diverges
  w.run({"runs", "--json"}, 0);
  w.run({"show", "last", "--json"}, 0);
  w.run({"stats", "--json"}, 0);
  w.run({"check", book, "--json"}, 0);
  w.run({"api", "--json"}, 0);
  w.run({"config", "--json"}, 0);
  write_file(w.dir / "book_test.lua", R"(local t = require "runbook.test"
t.case("passes", function()
  local r = t.run("book.lua", { params = { root = "/srv/app" } })
  t.eq(r.outcome, "succeeded")
end)
t.case("fails", function() t.eq(1, 2) end)
)");
  w.run({"test", w.dir / "book_test.lua", "--json"}, 1);
  // A change in doubt: the process died after beginning it.
  std::string doubt = w.dir / "doubt.lua";
  write_file(doubt, "runbook{ name = 'doubt', version = '1.0.0' }\nstep('run', function() exec{ 'true' } end)\n");
  ASSERT_EQ(run_cli({"exec", doubt}, {{"RUNBOOK_JOURNAL", w.dir / "journal.db"}, {"RUNBOOK_CRASH_AT", "before:1"}}).code,
            128 + SIGKILL);
  w.run({"resume", "last", "--json"}, 3);
  // A lock held by a live run.
  std::string slow = w.dir / "slow.lua";
  write_file(slow, "runbook{ name = 'slow', version = '1.0.0' }\nstep('wait', function() sleep('20s') end)\n");
  Child holder({RUNBOOK_BIN, "exec", slow}, w.env(), w.dir / "slow.log");
  bool held = false;
  for (int i = 0; i < 200 && !held; ++i) {
    held = has(run_cli({"locks", "--json"}, w.env()).out, "\"type\":\"lock\"");
    if (!held) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(held) << "the slow run never took its lock";
  w.run({"locks", "--json"}, 0);
  holder.stop();

  write_file(w.dir / "validate.py", kValidate);
  std::vector<std::string> args = {w.dir / "validate.py", std::string(RUNBOOK_SOURCE_DIR) + "/docs/json-schema.json"};
  args.insert(args.end(), w.outputs.begin(), w.outputs.end());
  auto v = python(args);
  ASSERT_EQ(v.code, 0) << v.stderr_text;
  json res = json::parse(v.stdout_text);
  EXPECT_TRUE(res["errors"].empty()) << res["errors"].dump(1);
  for (const char* t : {"run_begin", "step_begin", "step_end", "effect", "log", "run_end", "refused", "error",
                        "plan_saved", "replay_begin", "replay_end", "divergence", "resume_begin", "in_doubt", "run", "config",
                        "run_record", "lock", "stats", "check", "api", "case", "summary"})
    EXPECT_TRUE(res["types"].contains(t)) << "no command printed a line of type " << t << ": " << res["types"].dump();
}

TEST(JsonConvention, TheDocsHaveAValidExampleOfEveryType) {
  TempDir dir;
  write_file(dir / "examples.py", kDocExamples);
  auto v = python({dir / "examples.py", std::string(RUNBOOK_SOURCE_DIR) + "/docs/json-schema.json",
                   std::string(RUNBOOK_SOURCE_DIR) + "/docs/json.md"});
  ASSERT_EQ(v.code, 0) << v.stderr_text;
  json res = json::parse(v.stdout_text);
  EXPECT_TRUE(res["errors"].empty()) << res["errors"].dump(1);
  EXPECT_TRUE(res["missing"].empty()) << "docs/json.md has no example of: " << res["missing"].dump();
  EXPECT_GE(res["count"].get<int>(), 22);
}

TEST(JsonConvention, CheckJsonNamesParametersStepsAndLintWarnings) {
  TempDir dir;
  write_file(dir / "b.lua", R"(runbook { name = "c", version = "2.0.0",
  params = { token = { type = "string", secret = true, default = "s3cr3t-default" }, n = { type = "int", default = 3 } } }
step("one", function(p) local unused = 1; log.info("x") end)
step{ "two", always = true, run = function() end }
)");
  auto r = run_cli({"check", dir / "b.lua", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line: " << r.out;
  json c = json::parse(r.out);
  EXPECT_EQ(c["schema"], 1);
  EXPECT_EQ(c["type"], "check");
  EXPECT_EQ(c["name"], "c");
  EXPECT_EQ(c["steps"].size(), 2u);
  EXPECT_EQ(c["steps"][1]["always"], true);
  EXPECT_FALSE(has(r.out, "s3cr3t-default")) << "a secret's default is shown";
  bool unused = false;
  for (const auto& f : c["warnings"]) unused = unused || (has(f["message"].get<std::string>(), "unused") && f["line"] == 3);
  EXPECT_TRUE(unused) << c["warnings"].dump();
  auto bad = run_cli({"check", dir / "missing.lua", "--json"});
  EXPECT_EQ(bad.code, 2);
  json e = json::parse(bad.out);
  EXPECT_EQ(e["type"], "error");
  EXPECT_TRUE(has(e["error"].get<std::string>(), "missing.lua")) << bad.out;
}
