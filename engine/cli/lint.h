// `runbook lint FILE...`: luacheck (the generic Lua checks, with a std generated from the sandbox
// so it cannot drift) plus the engine's own checks (engine/cli/lint/analyse.lua, run by lua5.1
// with luacheck's parser): unknown primitives, arguments, parameters and result fields, and the
// unsafe habits (shell strings, pkill, fixed sleeps, destruction with no backup first).
#pragma once
#include <string>
#include <vector>

namespace rb::cli {

struct LintFinding {
  std::string file;
  int line = 1, col = 1;
  std::string severity;  // "error" | "warning"
  std::string code;      // luacheck's (W113) or ours (R001)
  std::string message;
};

// Lints each file. Throws UsageError when the tools are missing (naming apt-get install
// lua-check) or cannot run.
std::vector<LintFinding> lint_files(const std::vector<std::string>& files);

// "file:line:col: severity: message [code]"
std::string format_finding(const LintFinding& f);

// A .luacheckrc whose std is the sandbox's globals (what lint gives luacheck), for `runbook init`.
std::string luacheck_rc();

// `runbook lint`: prints the findings; 1 when one is an error, else 0.
int cmd_lint(const std::vector<std::string>& files);
// For `runbook check`: the same findings, each printed as a warning on stderr. A missing
// luacheck is one warning saying so; never fails the check.
void print_lint_warnings(const std::string& file);

}  // namespace rb::cli
