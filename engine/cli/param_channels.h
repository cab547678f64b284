// The channels a parameter can come from besides -p (argv, which every user can read):
// a private --param-file, RUNBOOK_PARAM_<NAME> in the environment, and for a needed secret on a
// terminal, a prompt without echo. Precedence: -p, then the file, then the environment, then
// the runbook's default.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace rb::cli {

// name=value lines; '#' comments and blank lines allowed. Refused (UsageError naming the file
// and why) unless it is a regular file owned by the invoking user and not readable or writable
// by group or others. Bounded: at most 1 MiB.
std::map<std::string, std::string> read_param_file(const std::string& path);

// The ExecRequest::param_source of a command: `file` (read once, "" for none), then the
// environment, then (when `interactive` and stdin is a terminal) a prompt without echo for a
// needed secret.
std::function<std::optional<std::string>(const std::string&, bool, bool)> param_channels(
    const std::string& file, bool interactive);

}  // namespace rb::cli
