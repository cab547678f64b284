#include "support/docker_daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "os/process.h"

namespace rb::test {
namespace fs = std::filesystem;

namespace {
const char* kInstall = "apt-get install -y --no-install-recommends docker.io docker-compose busybox-static";

os::ProcessResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                      int timeout_s) {
  os::ProcessSpec spec;
  spec.argv = argv;
  spec.env = env;
  spec.timeout = std::chrono::seconds(timeout_s);
  return os::run_process(spec);
}

// "" when the daemon at the unix socket `path` answers GET /_ping with 200, else why not.
std::string ping(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return "socket path longer than " + std::to_string(sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string why;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    why = std::string("connect: ") + std::strerror(errno);
  } else {
    const std::string req = "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    std::string got;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      why = std::string("send: ") + std::strerror(errno);
    } else {
      char buf[512];
      ssize_t n;
      while (got.size() < 4096 && (n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
      if (got.rfind("HTTP/1.", 0) != 0 || got.find(" 200 ") == std::string::npos)
        why = "ping answered \"" + got.substr(0, got.find('\r')) + "\"";
    }
  }
  ::close(fd);
  return why;
}
}  // namespace

DockerDaemon::DockerDaemon() {
  for (const char* tool : {"/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/docker-compose", "/bin/busybox"})
    if (::access(tool, X_OK) != 0)
      throw std::runtime_error(std::string(tool) + " is missing: " + kInstall);
  // Short: a unix socket path has at most 107 bytes, and containerd's socket lives under the
  // exec root.
  std::string tmpl = "/tmp/rbdXXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  sock_ = dir_ + "/d.sock";
  bin_ = dir_ + "/bin";
  fs::create_directories(bin_);
  fs::create_symlink("/usr/bin/docker", bin_ + "/docker");
  std::string log = dir_ + "/dockerd.log";

  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args = {"/usr/sbin/dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false",
                                   "--data-root", dir_ + "/data", "--exec-root", dir_ + "/x",
                                   "--pidfile", dir_ + "/d.pid", "-H", host()};
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("PATH=", 0) == 0 || kv.rfind("DOCKER_HOST=", 0) == 0 || kv.rfind("NOTIFY_SOCKET=", 0) == 0) continue;
    envs.push_back(kv);
  }
  // containerd, runc and the shims are found on PATH.
  envs.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log + ": " + std::strerror(errno));
  pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ == 0) {
    ::setsid();  // its own session and process group: no signal meant for the test's group
    // A subreaper: the containerd shims, which daemonize, are reparented to dockerd, not to this
    // test process. This process is a subreaper itself while run_process runs a program (the
    // CLI, docker-compose), and would stop a shim reparented to it as that program's leftover,
    // and with it the container.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    // The test process dies (a crash, a KILL from ctest's timeout): dockerd is told.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close_range(3, ~0U, 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec /usr/sbin/dockerd failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (pid_ < 0) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw std::runtime_error(std::string("fork: ") + std::strerror(fork_errno));
  }

  // Ready when the socket answers the API's ping; a dockerd that exits is reported at once.
  auto t0 = std::chrono::steady_clock::now();
  auto until = t0 + std::chrono::seconds(60);
  std::string why = "no socket yet";
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::string how = WIFEXITED(status) ? "exited " + std::to_string(WEXITSTATUS(status))
                                          : "killed by signal " + std::to_string(WTERMSIG(status));
      std::string text = "dockerd " + how + " before it answered on " + sock_ + "; its log:\n" + log_text();
      stop();
      throw std::runtime_error(text);
    }
    why = ping(sock_);
    if (why.empty()) break;
    if (std::chrono::steady_clock::now() > until) {
      std::string text = "dockerd did not answer on " + sock_ + " in 60 s (" + why + "); its log:\n" + log_text();
      stop();
      throw std::runtime_error(text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The client speaks to it too (the API version matches).
  auto r = run({"/usr/bin/docker", "version", "--format", "{{.Server.Version}}"}, {{"DOCKER_HOST", host()}}, 30);
  if (r.code != 0) {
    std::string text = "docker version against " + sock_ + " exited " + std::to_string(r.code) + ": " + r.stderr_text +
                       r.stdout_text + "\ndockerd's log:\n" + log_text();
    stop();
    throw std::runtime_error(text);
  }
}

DockerDaemon::~DockerDaemon() { stop(); }

std::string DockerDaemon::log_text() const {
  try {
    std::string t = read_file(dir_ + "/dockerd.log");
    if (t.size() > 20000) t = "...\n" + t.substr(t.size() - 20000);
    return t.empty() ? "(empty)" : t;
  } catch (const std::exception& e) {
    return std::string("(unreadable: ") + e.what() + ")";
  }
}

void DockerDaemon::stop() noexcept {
  if (pid_ > 0) {
    try {
      auto ids = run({"/usr/bin/docker", "ps", "-aq"}, {{"DOCKER_HOST", host()}}, 30);
      std::vector<std::string> rm = {"/usr/bin/docker", "rm", "-f"};
      std::string id;
      for (char c : ids.stdout_text + "\n") {
        if (c == '\n') {
          if (!id.empty()) rm.push_back(id);
          id.clear();
        } else {
          id += c;
        }
      }
      if (ids.code == 0 && rm.size() > 3) run(rm, {{"DOCKER_HOST", host()}}, 60);
    } catch (...) {
    }
    // dockerd unmounts its layers and stops containerd on TERM; give it time before the KILL
    // (to its whole group: containerd too).
    ::kill(pid_, SIGTERM);
    bool gone = false;
    for (int i = 0; i < 300 && !gone; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) gone = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(-pid_, SIGKILL);
    if (!gone) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (dir_.empty()) return;
  // Whatever is still mounted under the temp dir (a KILLed dockerd's overlays, its netns
  // files): detached, so that the directory can go.
  try {
    std::vector<std::string> mounts;
    std::string table = read_file("/proc/self/mounts");
    size_t pos = 0;
    while (pos < table.size()) {
      size_t nl = table.find('\n', pos);
      if (nl == std::string::npos) nl = table.size();
      std::string line = table.substr(pos, nl - pos);
      pos = nl + 1;
      size_t a = line.find(' ');
      if (a == std::string::npos) continue;
      size_t b = line.find(' ', a + 1);
      std::string mp = line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
      if (mp.rfind(dir_ + "/", 0) == 0) mounts.push_back(mp);
    }
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::map<std::string, std::string> DockerDaemon::env() const {
  const char* path = std::getenv("PATH");
  return {{"DOCKER_HOST", host()}, {"PATH", bin_ + ":" + (path ? path : "/usr/bin:/bin")}};
}

std::string DockerDaemon::docker(const std::vector<std::string>& args, int timeout_s) const {
  std::vector<std::string> argv = {"/usr/bin/docker"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv, {{"DOCKER_HOST", host()}}, timeout_s);
  if (r.code != 0)
    throw std::runtime_error("docker " + args.front() + " exited " + std::to_string(r.code) + ": " + r.stderr_text);
  return r.stdout_text;
}

void DockerDaemon::import_busybox(const std::string& ref, const std::string& health) const {
  std::string root = dir_ + "/root-" + std::to_string(::getpid()) + "-" + health;
  fs::create_directories(root + "/bin");
  fs::create_directories(root + "/www");
  fs::copy_file("/bin/busybox", root + "/bin/busybox", fs::copy_options::overwrite_existing);
  for (const char* a : {"sh", "httpd", "cat", "sleep", "ls"})
    if (!fs::exists(root + "/bin/" + a)) fs::create_symlink("busybox", root + "/bin/" + a);
  write_file(root + "/www/health", health);
  std::string tar = root + ".tar";
  auto t = run({"tar", "-C", root, "-cf", tar, "."}, {}, 60);
  if (t.code != 0) throw std::runtime_error("tar failed: " + t.stderr_text);
  docker({"import", tar, ref});
}

}  // namespace rb::test
