// `runbook init NAME`: a runbook to start from, with its test, and the editor's configuration
// (lua-language-server's .luarc.json and annotation file, luacheck's .luacheckrc).
#pragma once
#include <string>

namespace rb::cli {

// Writes NAME.lua, NAME_test.lua, .luarc.json, .luacheckrc and .runbook/runbook.d.lua in the
// current directory. Throws UsageError for a bad NAME or when one of them exists (nothing is
// written then).
int cmd_init(const std::string& name);

}  // namespace rb::cli
