// Test helpers: real things on 127.0.0.1 in temp dirs, stopped when the test ends.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "core/json.h"

namespace rb::test {

// A temp directory removed (recursively) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);
int free_port();

struct CliResult {
  int code = -1;
  std::string out, err;
  // --json output parsed, one event per line (non-JSON lines skipped).
  std::vector<json> events() const;
};
// Runs the built `runbook` binary with args; env entries are added to the environment.
CliResult run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                  int timeout_s = 120);

// A child process started for a test (a server), killed with its process group at destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
        const std::string& log = "");
  ~Child();
  pid_t pid() const { return pid_; }
  void stop();

 private:
  pid_t pid_ = -1;
};

// tests/support/http_server.py: a small HTTP server on 127.0.0.1:port. GET /health answers
// the status in <dir>/status (200 if absent); POST/PUT/DELETE are counted in <dir>/requests.log
// and answered 200 with the JSON body echoed. Waits until it accepts connections.
class HttpServer {
 public:
  explicit HttpServer(const std::string& dir);
  int port() const { return port_; }
  std::string url(const std::string& path = "/") const;
  void set_status(int status);
  int changing_requests() const;  // lines in requests.log

 private:
  std::string dir_;
  int port_;
  Child child_;
};

bool wait_for_port(int port, int timeout_ms);
std::string sha256_tree(const std::string& dir);  // checksum of a whole tree, for "unchanged" tests

}  // namespace rb::test
