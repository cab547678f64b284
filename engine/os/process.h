// Child processes: argv only (never a shell), own process group, output captured, a deadline
// after which the whole group gets TERM and then KILL. Nothing the program starts outlives the
// call unless the spec says detached: when it ends (or is stopped), its group and whatever escaped
// the group (setsid, a double fork) get TERM, then KILL after the grace.
#pragma once
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.h"

namespace rb::os {

// The grace between TERM and KILL when the call is stopped from outside (Ctrl-C, the step's
// deadline): short, so that the step ends within its deadline plus a second.
constexpr Millis kStopGrace{500};

struct ProcessSpec {
  std::vector<std::string> argv;
  std::string cwd;
  std::map<std::string, std::string> env;  // added to (or replacing in) the inherited environment
  std::vector<std::string> unset_env;
  std::optional<std::string> stdin_data;  // fed to the child; stdin is /dev/null otherwise
  Millis timeout{60'000};
  Millis grace{3'000};          // between TERM and KILL
  size_t max_output = 4 << 20;  // per stream; the tail is kept beyond this
  // true: what the program leaves running when it exits (a daemon it started) is not stopped.
  // A timeout still stops the program's process group.
  bool detached = false;
};

struct ProcessResult {
  int code = -1;   // exit code, or 128+signal
  int signal = 0;  // the signal that ended it, 0 if it exited
  bool timed_out = false;
  bool interrupted = false;
  std::string stdout_text, stderr_text;
  Millis duration{0};
  std::string spawn_error;  // non-empty when the program could not be started
  int leftovers = 0;        // processes other than the program itself that had to be stopped
};

// Called every ~50 ms while waiting; throwing from it (Interrupted, DeadlineExceeded) stops the
// child's group (TERM, grace, KILL) before the exception continues.
using Poll = std::function<void(Millis elapsed)>;

ProcessResult run_process(const ProcessSpec& spec, const Poll& poll = nullptr);

// Finds a program on PATH (or checks an explicit path); empty if not found.
std::string which(const std::string& program);
// The error when which() finds nothing: "'npm' not found on PATH", "'./x' not found".
std::string not_found_text(const std::string& program);

// The environment a child gets: ours without `unset`, with `env` added over it.
std::vector<std::string> child_env(const std::map<std::string, std::string>& env,
                                   const std::vector<std::string>& unset = {});
// argv/envp for execve, built before fork (nothing after fork may allocate): pointers into
// `strings`, which must outlive them, ending with nullptr.
std::vector<char*> exec_pointers(std::vector<std::string>& strings);

// TERM to the group, wait up to grace for it to die, then KILL. Returns true if it is gone.
bool stop_group(pid_t pgid, Millis grace, const std::function<bool()>& alive);

}  // namespace rb::os
