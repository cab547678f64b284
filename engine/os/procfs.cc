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

// Up to `max` bytes of a file through read(2): a /proc file whose process exits mid-read just
// ends early (or fails), which is no error here. "" when it cannot be opened.
std::string read_bounded(const std::string& path, size_t max, bool* opened = nullptr) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (opened) *opened = fd >= 0;
  if (fd < 0) return out;
  char buf[65536];
  while (out.size() < max) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, max - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// A /proc/PID file (stat, status, cmdline), bounded: a command line longer than this (the
// kernel allows some 2 MiB of argv) is cut, and no read waits on a process that is going away.
std::string slurp(const std::string& path) { return read_bounded(path, 4u << 20); }

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

namespace {

// Socket inodes in LISTEN state (st 0A) on `port` from one /proc/net/tcp{,6} table:
//   sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
//   0: 0100007F:1388 00000000:0000 0A ...
void listening_in(const std::string& table, int port, std::vector<uint64_t>& inodes) {
  size_t pos = table.find('\n');  // the header line
  while (pos != std::string::npos && pos < table.size()) {
    size_t end = table.find('\n', pos + 1);
    std::string line = table.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    pos = end;
    std::istringstream in(line);
    std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
    if (!(in >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
    if (st != "0A") continue;
    auto colon = local.rfind(':');
    if (colon == std::string::npos || colon + 1 >= local.size() || local.size() - colon > 5) continue;
    char* e = nullptr;
    long p = std::strtol(local.c_str() + colon + 1, &e, 16);
    if (!e || *e || p != port) continue;
    uint64_t ino = std::strtoull(inode.c_str(), &e, 10);
    if (!e || *e || ino == 0) continue;
    inodes.push_back(ino);
  }
}

}  // namespace

std::optional<std::vector<std::string>> read_argv(pid_t pid, size_t max_bytes) {
  if (pid <= 0) return std::nullopt;
  std::string cmd = read_bounded("/proc/" + std::to_string(pid) + "/cmdline", max_bytes);
  if (cmd.empty()) return std::nullopt;
  if (cmd.back() == '\0') cmd.pop_back();
  return split(cmd, '\0');
}

bool argv_has_prefix(const std::vector<std::string>& argv, const std::vector<std::string>& prefix) {
  if (prefix.empty() || argv.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (argv[i] == prefix[i]) continue;
    if (i == 0 && prefix[0].find('/') == std::string::npos) {
      auto slash = argv[0].rfind('/');
      if (slash != std::string::npos && argv[0].compare(slash + 1, std::string::npos, prefix[0]) == 0) continue;
    }
    return false;
  }
  return true;
}

PortHolders port_holders(int port) {
  PortHolders h;
  if (port <= 0 || port > 65535) {
    h.error = "port " + std::to_string(port) + " is not a TCP port";
    return h;
  }
  // A busy server has many sockets: 64 MiB holds some 400,000 lines of either table.
  const size_t kTableMax = 64u << 20;
  std::vector<uint64_t> inodes;
  bool any_table = false;
  for (const char* t : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    bool opened = false;
    std::string table = read_bounded(t, kTableMax, &opened);
    any_table = any_table || opened;
    listening_in(table, port, inodes);
  }
  if (!any_table) {
    h.error = "cannot read /proc/net/tcp: " + std::string(std::strerror(errno));
    return h;
  }
  h.listening = !inodes.empty();
  if (!h.listening) return h;
  std::vector<std::string> wanted;
  for (uint64_t i : inodes) wanted.push_back("socket:[" + std::to_string(i) + "]");
  std::sort(wanted.begin(), wanted.end());
  for (pid_t pid : all_pids()) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      if (errno == EACCES || errno == EPERM) ++h.hidden;
      continue;  // ENOENT: it exited meanwhile
    }
    bool holds = false;
    size_t seen = 0;
    // A process may hold a million descriptors; each is one readlink into a fixed buffer.
    while (struct dirent* e = ::readdir(d)) {
      if (++seen > (1u << 21)) break;
      if (e->d_name[0] == '.') continue;
      char buf[64];
      ssize_t n = ::readlinkat(::dirfd(d), e->d_name, buf, sizeof buf);
      if (n <= 8 || n >= static_cast<ssize_t>(sizeof buf) || std::memcmp(buf, "socket:[", 8) != 0) continue;
      std::string link(buf, static_cast<size_t>(n));
      if (std::binary_search(wanted.begin(), wanted.end(), link)) {
        holds = true;
        break;
      }
    }
    ::closedir(d);
    if (holds) h.pids.push_back(pid);
  }
  std::sort(h.pids.begin(), h.pids.end());
  return h;
}

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
