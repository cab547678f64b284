// The command line: exec, check, runs, show, api. Each subcommand is a function of this file;
// later families of commands (replay, resume, report, stats) add theirs the same way.
#pragma once
#include <cstdint>
#include <string>

#include "journal/journal.h"

namespace rb::cli {

int run_cli(int argc, char** argv);

// "last" or a run id -> the id; throws UsageError when there is no such run.
int64_t resolve_run_id(Journal& j, const std::string& text);

}  // namespace rb::cli
