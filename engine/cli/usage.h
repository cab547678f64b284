// The command line's first word: a bare `runbook` prints the usage, an unknown command is named
// with the nearest command and the list of commands (exit 2), before CLI11 parses anything.
#pragma once
#include <CLI/CLI.hpp>

namespace rb::cli {

// -1 when argv's command is one of app's subcommands (or an option): parse on. Otherwise the
// usage or the error is on stderr and the exit status (2) is returned.
int check_command_word(const CLI::App& app, int argc, char** argv);

}  // namespace rb::cli
