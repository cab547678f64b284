// The command line: exec, check, runs, show, api. Each subcommand is a function of this file;
// later families of commands (replay, resume, report, stats) add theirs the same way.
#pragma once
#include <cstdint>
#include <string>

#include "journal/journal.h"
#include "journal/locks.h"
#include "lua/runbook.h"

namespace rb::cli {

int run_cli(int argc, char** argv);

// "last" or a run id -> the id; throws UsageError when there is no such run.
// A run's id from "N" or "last". A row reserved for a saved plan (not a run yet) is refused
// unless allow_reserved (show says what it is reserved for).
int64_t resolve_run_id(Journal& j, const std::string& text, bool allow_reserved = false);

// Run locks for live runs (exec, resume). A holder is stale when it ran on this host and its pid
// is gone or is another process now (start time from /proc/PID/stat); "" when it may still run.
std::string lock_holder_gone(const LockHolder& h);
std::unique_ptr<RunLocks> open_locks(Journal& j);
uint64_t self_start_ticks();  // /proc/self/stat field 22
// A run that stopped at its lock (res.lock set): refused (exit 4), interrupted while waiting, or
// the lock could not be taken. Prints why on stderr, or one JSON event.
void print_lock_stop(bool json, const ExecResult& res);
// --wait-lock text -> a duration; throws UsageError.
Millis parse_wait_lock(const std::string& text);

}  // namespace rb::cli
