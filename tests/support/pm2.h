// A pm2 daemon of a test's own (PM2_HOME in the test's temp dir), started with the apps of an
// ecosystem file and killed at destruction, and what `pm2 jlist` says about each app.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

namespace rb::test {

struct Pm2App {
  int pid = 0, restarts = 0;
  std::string status;
};

class Pm2Apps {
 public:
  // Starts the apps of `ecosystem` (a pm2 ecosystem JSON file) under PM2_HOME=home; a missing
  // pm2 fails the test with the command that installs it.
  Pm2Apps(const std::string& home, const std::string& ecosystem);
  ~Pm2Apps();
  Pm2Apps(const Pm2Apps&) = delete;
  Pm2Apps& operator=(const Pm2Apps&) = delete;
  // `pm2 ARGS...` under this PM2_HOME: its stdout and stderr.
  std::string pm2(const std::vector<std::string>& args) const;
  std::map<std::string, Pm2App> apps() const;

 private:
  std::string home_;
};

// Writes an ecosystem file of apps {name, script, args, cwd} and returns its path: a .py script
// runs with python3, a bare program name (redis-server) as itself, the rest with node; pm2 does
// not restart them on its own (autorestart off), so a restart count is the test's or the
// runbook's doing.
std::string pm2_ecosystem(const std::string& path, const std::vector<std::array<std::string, 4>>& apps);

}  // namespace rb::test
