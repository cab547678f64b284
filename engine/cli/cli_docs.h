// What is generated from the command line's own definitions (the CLI11 app --help prints), so it
// cannot drift from it: `runbook completion bash|zsh|fish` and `runbook man` (runbook(1) in roff).
// The completion scripts ask the runbook on the line for what only it knows, through the hidden
// `runbook __complete runs|params`.
#pragma once
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace rb::cli {

// The shells `runbook completion` writes a script for.
const std::vector<std::string>& completion_shells();

// The completion script for `shell` (one of completion_shells()); throws UsageError otherwise.
std::string completion_script(const CLI::App& app, const std::string& shell);

// runbook(1): NAME, SYNOPSIS, DESCRIPTION, COMMANDS (each with its options), EXIT STATUS (the
// app's footer), ENVIRONMENT, FILES, SEE ALSO.
std::string man_page(const CLI::App& app, const std::string& version);

// `runbook __complete runs [--journal J]`: the journal's run ids, newest first (at most 200), one
// "ID<TAB>runbook outcome date" line each. Prints nothing when the journal does not exist (it is
// never created) or cannot be read. Always returns 0.
int complete_runs(const std::string& journal_path);

// `runbook __complete params FILE`: one "name=" line per parameter the runbook declares; nothing
// when it cannot be loaded. Always returns 0.
int complete_params(const std::string& file);

}  // namespace rb::cli
