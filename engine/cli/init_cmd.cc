#include "cli/init_cmd.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "cli/api_doc.h"
#include "cli/lint.h"
#include "core/error.h"
#include "core/json.h"
#include "lua/runbook.h"
#include "os/files.h"

namespace fs = std::filesystem;

namespace rb::cli {
namespace {

const char* kRunbook = R"(-- @NAME@: scaffolded by `runbook init`. Rehearse it, then run it:
--   runbook exec @NAME@.lua --dry-run
--   runbook exec @NAME@.lua -p message=hi
-- Test it with `runbook test @NAME@_test.lua`; check it with `runbook lint @NAME@.lua`.
-- The reference of every primitive and global: `runbook api` (or docs/api.md).
runbook {
  name = "@NAME@",
  version = "0.1.0",
  summary = "Write a message to a file, looking before acting",
  params = {
    file = { type = "path", default = "/tmp/@NAME@.txt", target = true, doc = "the file to write" },
    message = { type = "string", default = "hello", doc = "what to write in it" },
  },
}

-- A probe: reads the world, changes nothing (it runs in a dry-run too).
step("look before acting", function(p)
  local st = fs.stat(p.file)
  if st.exists then
    log.info(p.file .. " exists (" .. tostring(st.size) .. " bytes): its content is kept as an artifact")
  else
    log.info(p.file .. " does not exist yet")
  end
end)

-- A change: planned in a dry-run, performed once live (journaled, resumable).
step{ "write the file", timeout = "1m", run = function(p)
  fs.write{ path = p.file, content = p.message .. "\n" }
end }

-- Runs even when an earlier step failed, or after Ctrl-C.
step{ "report", always = true, run = function(p)
  if run.failed then
    log.error("not written: " .. tostring(run.failed.error))
  else
    log.info("wrote " .. p.file)
  end
end }
)";

const char* kTest = R"(-- The cases of @NAME@.lua: `runbook test @NAME@_test.lua`. No effect touches the world: a
-- faked effect answers with its fake, any other with its planned result.
local t = require "runbook.test"

t.case("writes the message", function()
  local r = t.run("@NAME@.lua", { params = { file = "/tmp/@NAME@-test.txt", message = "hi" } })
  t.eq(r.outcome, "succeeded")
  t.called(r, "fs.write", { path = "/tmp/@NAME@-test.txt", content = "hi\n" })
end)

t.case("an existing file is replaced", function()
  local r = t.run("@NAME@.lua", {
    fakes = { ["fs.stat"] = { exists = true, type = "file", size = 6, mode = "644", mtime = 0 } },
  })
  t.eq(r.outcome, "succeeded")
  t.called(r, "fs.write", { content = "hello\n" })
end)

t.case("a failed write fails the run, and the report still runs", function()
  local r = t.run("@NAME@.lua", { fakes = { ["fs.write"] = t.fail("disk full") } })
  t.eq(r.outcome, "failed")
  t.eq(r.exit_code, 1)
  t.eq(r.steps[#r.steps].name, "report")
end)

t.case("a crash at any change resumes to the same end", function()
  t.crash_matrix("@NAME@.lua", {})
end)
)";

std::string fill(std::string text, const std::string& name) {
  const std::string key = "@NAME@";
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + name.size()))
    text.replace(at, key.size(), name);
  return text;
}

bool good_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || !std::isalpha(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  // NAME_test.lua is the test; a runbook named like a test would be run as one.
  return !(n.size() >= 5 && n.compare(n.size() - 5, 5, "_test") == 0);
}

std::string luarc() {
  std::error_code ec;
  std::string stdlib = fs::absolute(stdlib_dir(), ec).lexically_normal().string();
  json j{{"$schema", "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json"},
         {"runtime.version", "Lua 5.4"},
         // What the sandbox does not have, the editor should not offer.
         {"runtime.builtin",
          {{"io", "disable"}, {"os", "disable"}, {"debug", "disable"}, {"package", "disable"},
           {"ffi", "disable"}, {"jit", "disable"}, {"bit", "disable"}, {"bit32", "disable"}}},
         // The annotations of every primitive and global; stdlib/ so that require "runbook.test"
         // resolves to its source.
         {"workspace.library", json::array({".runbook", stdlib})},
         {"workspace.checkThirdParty", false}};
  return j.dump(2) + "\n";
}

}  // namespace

int cmd_init(const std::string& name) {
  if (!good_name(name))
    throw UsageError("init: bad name '" + name.substr(0, 80) +
                     "': a letter, then up to 63 letters, digits, '_' or '-' (not ending in _test)");
  std::vector<std::pair<std::string, std::string>> files = {
      {name + ".lua", fill(kRunbook, name)},
      {name + "_test.lua", fill(kTest, name)},
      {".runbook/runbook.d.lua", api_luals(builtin_registry())},
      {".luarc.json", luarc()},
      {".luacheckrc", luacheck_rc()},
  };
  std::error_code ec;
  for (const auto& [path, _] : files)
    if (fs::exists(fs::symlink_status(path, ec)))
      throw UsageError("init: " + path + " exists; nothing was written (move it away, or init another name)");
  if (!fs::is_directory(".runbook", ec)) {
    fs::create_directory(".runbook", ec);
    if (ec) throw UsageError("init: cannot make .runbook/: " + ec.message());
  }
  for (const auto& [path, text] : files) {
    try {
      os::atomic_write(path, text, 0644);
    } catch (const std::exception& e) {
      throw UsageError("init: cannot write " + path + ": " + e.what());
    }
    std::printf("wrote %s\n", path.c_str());
  }
  std::printf("next:\n  runbook lint %s.lua\n  runbook test %s_test.lua\n  runbook exec %s.lua --dry-run\n",
              name.c_str(), name.c_str(), name.c_str());
  return 0;
}

}  // namespace rb::cli
