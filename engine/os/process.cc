#include "os/process.h"

#include <algorithm>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "core/strings.h"

extern char** environ;

namespace rb::os {
namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void append_capped(std::string& buf, const char* data, size_t n, size_t cap) {
  buf.append(data, n);
  if (buf.size() > cap + cap / 4) buf.erase(0, buf.size() - cap);  // keep the tail
}

}  // namespace

std::vector<std::string> child_env(const std::map<std::string, std::string>& env,
                                   const std::vector<std::string>& unset) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (env.count(key)) continue;
    bool drop = false;
    for (const auto& u : unset) drop = drop || u == key;
    if (!drop) out.push_back(kv);
  }
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> exec_pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string not_found_text(const std::string& program) {
  return "'" + program + "' not found" + (program.find('/') == std::string::npos ? " on PATH" : "");
}

std::string which(const std::string& program) {
  if (program.find('/') != std::string::npos)
    return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  for (const auto& dir : split(path ? path : "/usr/bin:/bin", ':')) {
    std::string full = (dir.empty() ? "." : dir) + "/" + program;
    struct stat st;
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(full.c_str(), X_OK) == 0)
      return full;
  }
  return "";
}

bool stop_group(pid_t pgid, Millis grace, const std::function<bool()>& alive) {
  ::kill(-pgid, SIGTERM);
  auto until = Clock::now() + grace;
  while (Clock::now() < until) {
    if (!alive()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pgid, SIGKILL);
  auto hard = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < hard) {
    if (!alive()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !alive();
}

namespace {

// One line of /proc/PID/stat, the fields finding descendants needs.
struct ProcEntry {
  pid_t pid = 0, ppid = 0;
  char state = '?';
};

bool read_entry(pid_t pid, ProcEntry& out) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const char* close = std::strrchr(buf, ')');
  int ppid = 0;
  char state = 0;
  if (!close || std::sscanf(close + 1, " %c %d", &state, &ppid) != 2) return false;
  out = {pid, static_cast<pid_t>(ppid), state};
  return true;
}

std::vector<ProcEntry> process_table() {
  std::vector<ProcEntry> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    ProcEntry p;
    if (end && !*end && pid > 0 && read_entry(static_cast<pid_t>(pid), p)) out.push_back(p);
  }
  ::closedir(d);
  return out;
}

// While one program runs, this process is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever
// the program leaves behind, by a double fork, setsid or `(cmd &)`, is reparented to us instead of
// init, so it is found in /proc (its chain of parents leads here) and stopped before run_process
// returns. Set only for one run_process, not for the runner's life: the process backend's daemons
// (spawn_detached's double fork) must still be orphaned to init.
class Reaper {
 public:
  Reaper() : self_(::getpid()) {
    int was = 0;
    ::prctl(PR_GET_CHILD_SUBREAPER, &was, 0, 0, 0);
    if (!was) set_ = ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
    // Children we had before (a test's servers, say) are none of this program's.
    for (const auto& e : process_table())
      if (e.ppid == self_) before_.insert(e.pid);
  }
  ~Reaper() {
    if (set_) ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // The live descendants started since (main included while it runs). A zombie reparented to us
  // is reaped on the way: kill(pid, 0) would count it alive, and nobody else will wait for it.
  std::vector<pid_t> live(pid_t main) {
    // /proc is not read atomically: a process read before its parent exited names that parent,
    // which is gone from the table by the time it is read, and the walk from here would miss it
    // (found by a double fork, 17 times in 30). An entry whose parent is missing is such a
    // reparenting in flight: read the table again (bounded; other processes of the machine can
    // be in flux too, which costs a retry, never a miss).
    auto table = process_table();
    for (int tries = 0; tries < 10; ++tries) {
      std::set<pid_t> pids;
      for (const auto& e : table) pids.insert(e.pid);
      bool dangling = false;
      for (const auto& e : table)
        if (e.ppid > 1 && !pids.count(e.ppid)) dangling = true;
      if (!dangling) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      table = process_table();
    }
    std::multimap<pid_t, const ProcEntry*> kids;
    for (const auto& e : table) kids.emplace(e.ppid, &e);
    std::vector<pid_t> out, queue{self_};
    for (size_t i = 0; i < queue.size() && queue.size() < 100'000; ++i) {
      auto [lo, hi] = kids.equal_range(queue[i]);
      for (auto it = lo; it != hi; ++it) {
        const ProcEntry& c = *it->second;
        if (queue[i] == self_ && before_.count(c.pid)) continue;
        if (c.state == 'Z') {
          if (queue[i] == self_ && c.pid != main) ::waitpid(c.pid, nullptr, WNOHANG);
          continue;
        }
        out.push_back(c.pid);
        queue.push_back(c.pid);
      }
    }
    return out;
  }

  // TERM to the program's group and every descendant, KILL after `grace` to what is left. `reaped`
  // waits for the main process without blocking (and says whether it is gone); `pump` reads the
  // output meanwhile, so a process that writes while it exits is not stuck on a full pipe.
  // Returns how many processes other than the main one had to be stopped.
  int stop(pid_t main, Millis grace, const std::function<bool()>& reaped,
           const std::function<void(int)>& pump) {
    std::set<pid_t> seen;
    auto send = [&](int sig, const std::vector<pid_t>& procs, bool only_new) {
      // The group too, while its leader's pid is still ours (a zombie's pid is not reused).
      if (!only_new && !reaped()) ::kill(-main, sig);
      for (pid_t p : procs)
        if (seen.insert(p).second || !only_new) ::kill(p, sig);
    };
    auto others = [&] { return static_cast<int>(seen.size() - seen.count(main)); };
    // "Nothing left" is believed only when two reads a moment apart agree: a process between
    // fork and its parent's exit can be missed by one.
    auto nothing_left = [&] {
      if (!reaped() || !live(main).empty()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return reaped() && live(main).empty();
    };
    std::vector<pid_t> procs = live(main);
    if (procs.empty() && nothing_left()) return 0;
    procs = live(main);
    send(SIGTERM, procs, false);
    auto until = Clock::now() + grace;
    while (true) {
      pump(20);
      bool gone = reaped();
      procs = live(main);
      if (gone && procs.empty() && nothing_left()) return others();
      if (Clock::now() >= until) break;
      send(SIGTERM, procs, true);  // reparented or forked since
    }
    auto hard = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < hard) {
      send(SIGKILL, procs, false);
      pump(10);
      bool gone = reaped();
      procs = live(main);
      if (gone && procs.empty()) break;
    }
    return others();
  }

 private:
  pid_t self_;
  bool set_ = false;
  std::set<pid_t> before_;
};

}  // namespace

ProcessResult run_process(const ProcessSpec& spec, const Poll& poll) {
  ProcessResult r;
  auto t0 = Clock::now();
  if (spec.argv.empty()) {
    r.spawn_error = "empty argv";
    return r;
  }
  std::string exe = which(spec.argv[0]);
  if (exe.empty()) {
    r.spawn_error = not_found_text(spec.argv[0]);
    return r;
  }

  int out_pipe[2], err_pipe[2], in_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC) || ::pipe2(in_pipe, O_CLOEXEC) ||
      ::pipe2(exec_pipe, O_CLOEXEC)) {
    r.spawn_error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]);
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]), exec_r(exec_pipe[0]), exec_w(exec_pipe[1]);

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings = child_env(spec.env, spec.unset_env);
  std::vector<std::string> argv_copy = spec.argv;
  std::vector<char*> envp = exec_pointers(env_strings), argv = exec_pointers(argv_copy);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  Fd devnull_fd(devnull);

  // Before the fork, so that nothing the program starts can slip out to init.
  std::optional<Reaper> reaper;
  if (!spec.detached) reaper.emplace();

  pid_t pid = ::fork();
  if (pid < 0) {
    r.spawn_error = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    ::setsid();  // own session and process group: the group is what a timeout stops
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::dup2(spec.stdin_data ? in_r.fd : devnull, 0);
    ::dup2(out_w.fd, 1);
    ::dup2(err_w.fd, 2);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(exec_w.fd, "c", 1);
      (void)!::write(exec_w.fd, &e, sizeof e);
      ::_exit(127);
    }
    ::execve(exe.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(exec_w.fd, "x", 1);
    (void)!::write(exec_w.fd, &e, sizeof e);
    ::_exit(127);
  }
  out_w.reset();
  err_w.reset();
  in_r.reset();
  exec_w.reset();

  // Did exec succeed? The pipe closes on exec (CLOEXEC) or carries the errno.
  char what = 0;
  int err = 0;
  if (::read(exec_r.fd, &what, 1) == 1) {
    (void)!::read(exec_r.fd, &err, sizeof err);
    ::waitpid(pid, nullptr, 0);
    r.spawn_error = what == 'c' ? "cannot enter directory " + spec.cwd + ": " + std::strerror(err)
                                : "cannot execute " + exe + ": " + std::strerror(err);
    return r;
  }

  // stdin is written in pieces from the poll loop so a child that does not read cannot block us.
  std::string stdin_buf = spec.stdin_data.value_or("");
  size_t stdin_off = 0;
  if (!spec.stdin_data) in_w.reset();
  ::fcntl(out_r.fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.fd, F_SETFL, O_NONBLOCK);
  if (in_w.fd >= 0) ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);

  int status = 0;
  bool exited = false;
  auto reap_main = [&] {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    return exited;
  };
  char buf[65536];
  // Reads what the program wrote (and feeds its stdin), waiting up to `ms`.
  auto pump = [&](int ms) {
    struct pollfd fds[3];
    int n = 0;
    if (out_r.fd >= 0) fds[n++] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) fds[n++] = {err_r.fd, POLLIN, 0};
    if (in_w.fd >= 0 && !exited) fds[n++] = {in_w.fd, POLLOUT, 0};
    if (n == 0) {
      ::poll(nullptr, 0, ms);
      return;
    }
    ::poll(fds, static_cast<nfds_t>(n), ms);
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_w.fd) {
        ssize_t w = ::write(in_w.fd, stdin_buf.data() + stdin_off, stdin_buf.size() - stdin_off);
        if (w > 0) stdin_off += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN) || stdin_off >= stdin_buf.size()) in_w.reset();
        continue;
      }
      Fd& src = fds[i].fd == out_r.fd ? out_r : err_r;
      std::string& dst = fds[i].fd == out_r.fd ? r.stdout_text : r.stderr_text;
      ssize_t got = ::read(src.fd, buf, sizeof buf);
      if (got > 0)
        append_capped(dst, buf, static_cast<size_t>(got), spec.max_output);
      else if (got == 0 || (errno != EAGAIN && errno != EINTR))
        src.reset();
    }
  };
  // The program and, unless detached, everything it started: TERM, grace, KILL.
  auto stop = [&](Millis grace) {
    if (reaper) {
      r.leftovers = reaper->stop(pid, grace, reap_main, pump);
    } else {
      stop_group(pid, grace, [&] {
        pump(0);
        return !reap_main() || ::kill(-pid, 0) == 0;
      });
    }
    if (!exited) {
      ::waitpid(pid, &status, 0);
      exited = true;
    }
  };

  auto deadline = t0 + spec.timeout;
  try {
    while (!reap_main()) {
      pump(50);
      auto now = Clock::now();
      if (poll) poll(std::chrono::duration_cast<Millis>(now - t0));
      if (now > deadline && !reap_main()) {
        r.timed_out = true;
        break;
      }
    }
  } catch (...) {
    // Ctrl-C or the step's deadline: the operator is waiting, so a program that ignores TERM
    // gets at most half a second before KILL, whatever grace it asked for.
    r.interrupted = true;
    stop(std::min(spec.grace, kStopGrace));
    throw;
  }
  // Timed out: the program and what it started. Exited: what it left running, unless detached.
  if (!exited || reaper) stop(spec.grace);
  // Output still open now (a detached daemon holding the pipe) is read for a moment more and then
  // abandoned: a background process cannot make the call hang.
  auto drain_until = Clock::now() + std::chrono::milliseconds(200);
  while ((out_r.fd >= 0 || err_r.fd >= 0) && Clock::now() < drain_until) pump(20);
  if (WIFEXITED(status)) {
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
    r.code = 128 + r.signal;
  }
  r.duration = std::chrono::duration_cast<Millis>(Clock::now() - t0);
  return r;
}

}  // namespace rb::os
