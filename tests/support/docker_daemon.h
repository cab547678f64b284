// A private Docker daemon for tests: dockerd with its own data root, exec root, pidfile and
// socket in a short temp dir, no bridge, no iptables (containers use host networking and listen
// on 127.0.0.1 only). Images come from no registry: `docker import` of a rootfs made from
// Debian's busybox-static. dockerd is this process's child (its own session and process group,
// its output in <dir>/dockerd.log); stopped, with its containers, at destruction: TERM, KILL
// after a grace, waited for.
#pragma once
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/support.h"

namespace rb::test {

class DockerDaemon {
 public:
  // Throws std::runtime_error naming the install command when a tool is missing, or with the
  // daemon's log when it does not answer within 60 s.
  DockerDaemon();
  ~DockerDaemon();
  DockerDaemon(const DockerDaemon&) = delete;
  DockerDaemon& operator=(const DockerDaemon&) = delete;

  // unix:///tmp/rbdXXXXXX/d.sock
  std::string host() const { return "unix://" + sock_; }
  // A directory to put first on PATH: `docker` there is Debian's client (/usr/bin/docker), which
  // speaks this daemon's API.
  const std::string& bin_dir() const { return bin_; }
  // DOCKER_HOST and PATH for a child (the runbook).
  std::map<std::string, std::string> env() const;
  // Runs the docker client; throws with its output when it fails.
  std::string docker(const std::vector<std::string>& args, int timeout_s = 120) const;
  // Imports a busybox rootfs as `ref` whose /www/health holds `health`.
  void import_busybox(const std::string& ref, const std::string& health) const;

 private:
  void stop() noexcept;
  std::string log_text() const;

  std::string dir_, sock_, bin_;
  pid_t pid_ = -1;
};

}  // namespace rb::test
