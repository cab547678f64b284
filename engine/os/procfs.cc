#include "os/procfs.h"

#include <dirent.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/strings.h"

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

std::optional<ProcInfo> read_process(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  std::string stat = slurp(base + "/stat");
  if (stat.empty()) return std::nullopt;
  ProcInfo p;
  p.pid = pid;
  // comm may hold spaces and parentheses: fields start after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
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

}  // namespace rb::os
