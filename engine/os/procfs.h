// The process table, read from /proc, and the few process operations built on exact identity.
// Used by proc.find/proc.signal and the process backend of services to identify a process
// exactly (pid + start time + command line), never by pattern alone.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
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

// Only /proc/PID/stat: cheap enough to poll. cmdline, exe, cwd and user stay empty.
std::optional<ProcInfo> read_stat(pid_t pid);

// argv of a process from /proc/PID/cmdline, reading at most `max_bytes` (a longer command line is
// cut there); nullopt when it is gone or has none (a kernel thread). Cheap: no other file.
std::optional<std::vector<std::string>> read_argv(pid_t pid, size_t max_bytes = 256 * 1024);

// Whether `argv` starts with exactly `prefix` (element by element, whole strings; never a pattern
// or a substring). The first element also matches by its file name when `prefix[0]` has no '/'
// ("python3" matches "/usr/bin/python3"). An empty prefix matches nothing.
bool argv_has_prefix(const std::vector<std::string>& argv, const std::vector<std::string>& prefix);

// Who listens on a TCP port (IPv4 and IPv6, any address), from /proc/net/tcp and tcp6 (LISTEN
// sockets on that port -> socket inodes) and /proc/*/fd (socket:[inode] -> pid). Every read is
// bounded; processes that exit during the scan are skipped.
struct PortHolders {
  bool listening = false;    // some socket listens on the port
  std::vector<pid_t> pids;   // the processes holding such a socket (ascending)
  int hidden = 0;            // processes whose descriptors this user may not read
  std::string error;         // /proc/net/tcp could not be read
};
PortHolders port_holders(int port);

// Exists and is not a zombie. Orphans are reaped by pid 1, which may be slow or absent in a
// container, so a zombie counts as gone: it runs nothing and holds no port.
bool is_alive(pid_t pid);
// The live (non-zombie) members of a process group.
std::vector<pid_t> group_members(pid_t pgid);
// This process and its ancestors up to pid 1: what proc.signal must never hit.
std::vector<pid_t> self_and_ancestors();

// "TERM", "SIGTERM", "term" or "15" -> 15; 0 if unknown.
int signal_number(const std::string& name);
std::string signal_name(int sig);  // 15 -> "TERM"

// Sends `sig` to `pid` only if it is still the process that started at `start_ticks`; through a
// pidfd where the kernel has them, so a pid reused between the check and the signal is never hit.
// Returns 0, or an errno (ESRCH when it is gone or is another process now).
int signal_if_same(pid_t pid, uint64_t start_ticks, int sig);

// A program started to outlive its starter: double fork (the starter keeps no zombie), its own
// session and process group (pgid == pid), stdin /dev/null, stdout and stderr appended to `log`,
// no inherited descriptors, signal mask and dispositions reset.
struct DetachedSpec {
  std::vector<std::string> argv;
  std::string cwd;
  std::map<std::string, std::string> env;  // added to the inherited environment
  std::string log;
};
struct Detached {
  pid_t pid = 0;       // running the program (exec succeeded) when error is empty
  std::string error;   // "cannot enter directory /x: No such file or directory"
};
Detached spawn_detached(const DetachedSpec& spec);

}  // namespace rb::os
