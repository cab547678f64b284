// The process table, read from /proc. Used by proc.find/proc.signal and the process backend of
// services to identify a process exactly (pid + start time + command line), never by pattern alone.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rb::os {

struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgid = 0;
  pid_t sid = 0;
  uid_t uid = 0;
  std::string user;
  std::string exe;  // resolved /proc/PID/exe, may be empty without permission
  std::string cwd;
  std::vector<std::string> argv;
  std::string cmdline;      // argv joined with spaces, for matching and display
  uint64_t start_ticks = 0;  // since boot, /proc/PID/stat field 22: identifies a pid's lifetime
  int64_t started_ms = 0;    // epoch milliseconds
  char state = '?';
};

std::vector<ProcInfo> list_processes();
std::optional<ProcInfo> read_process(pid_t pid);

}  // namespace rb::os
