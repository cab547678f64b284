#include "os/procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/strings.h"
#include "os/process.h"

namespace rb::os {
namespace {

int64_t boot_time_ms() {
  static int64_t cached = [] {
    std::ifstream in("/proc/stat");
    std::string key;
    int64_t v = 0;
    while (in >> key) {
      if (key == "btime") {
        in >> v;
        return v * 1000;
      }
      std::string rest;
      std::getline(in, rest);
    }
    return int64_t{0};
  }();
  return cached;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace

std::optional<ProcInfo> read_stat(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return std::nullopt;
  ProcInfo p;
  p.pid = pid;
  // comm may hold spaces and parentheses: fields start after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (fields >> tok) f.push_back(tok);
  if (f.size() < 20) return std::nullopt;
  p.state = f[0].empty() ? '?' : f[0][0];
  p.ppid = std::atoi(f[1].c_str());
  p.pgid = std::atoi(f[2].c_str());
  p.sid = std::atoi(f[3].c_str());
  p.start_ticks = std::strtoull(f[19].c_str(), nullptr, 10);
  p.started_ms = boot_time_ms() + static_cast<int64_t>(p.start_ticks * 1000 / sysconf(_SC_CLK_TCK));
  return p;
}

std::optional<ProcInfo> read_process(pid_t pid) {
  auto st = read_stat(pid);
  if (!st) return std::nullopt;
  ProcInfo p = std::move(*st);
  std::string base = "/proc/" + std::to_string(pid);
  std::string cmd = slurp(base + "/cmdline");
  if (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  if (!cmd.empty()) p.argv = split(cmd, '\0');
  p.cmdline = join(p.argv, " ");
  std::string status = slurp(base + "/status");
  auto pos = status.find("\nUid:");
  if (pos != std::string::npos) p.uid = static_cast<uid_t>(std::atoi(status.c_str() + pos + 5));
  if (struct passwd* pw = ::getpwuid(p.uid)) p.user = pw->pw_name;
  p.exe = link(base + "/exe");
  p.cwd = link(base + "/cwd");
  return p;
}

std::vector<ProcInfo> list_processes() {
  std::vector<ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    if (auto p = read_process(static_cast<pid_t>(pid))) out.push_back(std::move(*p));
  }
  ::closedir(d);
  return out;
}

namespace {

std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end && !*end && pid > 0) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

bool zombie(char state) { return state == 'Z' || state == 'X' || state == 'x'; }

}  // namespace

bool is_alive(pid_t pid) {
  if (pid <= 0) return false;
  auto st = read_stat(pid);
  return st && !zombie(st->state);
}

std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> out;
  if (pgid <= 0) return out;
  for (pid_t pid : all_pids()) {
    auto st = read_stat(pid);
    if (st && st->pgid == pgid && !zombie(st->state)) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> self_and_ancestors() {
  std::vector<pid_t> out;
  pid_t p = ::getpid();
  while (p > 0 && out.size() < 4096) {
    out.push_back(p);
    if (p == 1) break;
    auto st = read_stat(p);
    if (!st) break;
    p = st->ppid;
  }
  if (std::find(out.begin(), out.end(), 1) == out.end()) out.push_back(1);
  return out;
}

namespace {
const std::vector<std::pair<int, const char*>>& signal_table() {
  static const std::vector<std::pair<int, const char*>> t = {
      {SIGHUP, "HUP"},   {SIGINT, "INT"},   {SIGQUIT, "QUIT"}, {SIGKILL, "KILL"},
      {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGTERM, "TERM"}, {SIGCONT, "CONT"},
      {SIGSTOP, "STOP"}, {SIGWINCH, "WINCH"}, {SIGALRM, "ALRM"}};
  return t;
}
}  // namespace

int signal_number(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), ::toupper);
  if (n.rfind("SIG", 0) == 0) n = n.substr(3);
  if (!n.empty() && std::all_of(n.begin(), n.end(), ::isdigit)) {
    int v = std::atoi(n.c_str());
    return v > 0 && v < NSIG ? v : 0;
  }
  for (const auto& [num, nm] : signal_table())
    if (n == nm) return num;
  return 0;
}

std::string signal_name(int sig) {
  for (const auto& [num, nm] : signal_table())
    if (num == sig) return nm;
  return std::to_string(sig);
}

int signal_if_same(pid_t pid, uint64_t start_ticks, int sig) {
  if (pid <= 0) return ESRCH;
#ifdef SYS_pidfd_open
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    // The pidfd pins this process: if the start time matches now, the signal reaches it and
    // no other, whatever happens to the pid number meanwhile.
    auto st = read_stat(pid);
    int rc = 0;
    if (!st || st->start_ticks != start_ticks || zombie(st->state))
      rc = ESRCH;
    else if (::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) != 0)
      rc = errno;
    ::close(fd);
    return rc;
  }
  if (errno == ESRCH) return ESRCH;
#endif
  auto st = read_stat(pid);
  if (!st || st->start_ticks != start_ticks || zombie(st->state)) return ESRCH;
  return ::kill(pid, sig) == 0 ? 0 : errno;
}

namespace {

void write_error(int fd, char what, int err) {
  char buf[1 + sizeof(int)];
  buf[0] = what;
  std::memcpy(buf + 1, &err, sizeof err);
  (void)!::write(fd, buf, sizeof buf);
}

}  // namespace

Detached spawn_detached(const DetachedSpec& spec) {
  Detached d;
  if (spec.argv.empty()) {
    d.error = "empty argv";
    return d;
  }
  std::string exe = which(spec.argv[0]);
  if (exe.empty()) {
    d.error = not_found_text(spec.argv[0]);
    return d;
  }
  // Everything the children need is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings = child_env(spec.env);
  std::vector<std::string> argv_copy = spec.argv;
  std::vector<char*> envp = exec_pointers(env_strings), argv = exec_pointers(argv_copy);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  const char* log = spec.log.empty() ? "/dev/null" : spec.log.c_str();

  int pid_pipe[2], exec_pipe[2];
  if (::pipe2(pid_pipe, O_CLOEXEC) != 0) {
    d.error = std::string("pipe: ") + std::strerror(errno);
    return d;
  }
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    d.error = std::string("pipe: ") + std::strerror(errno);
    ::close(pid_pipe[0]);
    ::close(pid_pipe[1]);
    return d;
  }
  pid_t mid = ::fork();
  if (mid < 0) {
    d.error = std::string("fork: ") + std::strerror(errno);
    for (int fd : {pid_pipe[0], pid_pipe[1], exec_pipe[0], exec_pipe[1]}) ::close(fd);
    return d;
  }
  if (mid == 0) {
    // The middle child only forks and exits, so the program is orphaned at once and never
    // becomes a zombie of the runbook.
    pid_t gc = ::fork();
    if (gc < 0) {
      write_error(exec_pipe[1], 'f', errno);
      ::_exit(1);
    }
    if (gc > 0) {
      (void)!::write(pid_pipe[1], &gc, sizeof gc);
      ::_exit(0);
    }
    ::setsid();
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) ::signal(sig, SIG_DFL);
    if (cwd && ::chdir(cwd) != 0) {
      write_error(exec_pipe[1], 'c', errno);
      ::_exit(127);
    }
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) {
      write_error(exec_pipe[1], 'l', errno);
      ::_exit(127);
    }
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    // Descriptors the runbook holds (the journal, sockets) must not leak into a long-lived
    // service; the exec pipe is already close-on-exec.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::execve(exe.c_str(), argv.data(), envp.data());
    write_error(exec_pipe[1], 'x', errno);
    ::_exit(127);
  }
  ::close(pid_pipe[1]);
  ::close(exec_pipe[1]);
  int status = 0;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t gc = 0;
  ssize_t n;
  while ((n = ::read(pid_pipe[0], &gc, sizeof gc)) < 0 && errno == EINTR) {
  }
  ::close(pid_pipe[0]);
  // The exec pipe closes when the program's exec succeeds, or carries what failed.
  char buf[1 + sizeof(int)];
  ssize_t got = 0;
  while (got < static_cast<ssize_t>(sizeof buf)) {
    ssize_t r = ::read(exec_pipe[0], buf + got, sizeof buf - static_cast<size_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += r;
  }
  ::close(exec_pipe[0]);
  if (got > 0) {
    int err = 0;
    if (got == static_cast<ssize_t>(sizeof buf)) std::memcpy(&err, buf + 1, sizeof err);
    switch (buf[0]) {
      case 'c': d.error = "cannot enter directory " + spec.cwd + ": " + std::strerror(err); break;
      case 'l': d.error = "cannot open log " + std::string(log) + ": " + std::strerror(err); break;
      case 'f': d.error = std::string("fork: ") + std::strerror(err); break;
      default: d.error = "cannot execute " + exe + ": " + std::strerror(err);
    }
    return d;
  }
  if (n != static_cast<ssize_t>(sizeof gc) || gc <= 0) {
    d.error = "the program could not be started (fork failed)";
    return d;
  }
  d.pid = gc;
  return d;
}

}  // namespace rb::os
