// Test helpers: real things on 127.0.0.1 in temp dirs, stopped when the test ends.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "dispatch/reporter.h"
#include "lua/runbook.h"

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
// Records how long the run printed in `r` took ("succeeded in 1.2s", "failed after 3s") as the
// test property `label`: bench/seed_timings.sh reads them from the XML output of the live seed
// tests and sets them beside the documents' fixed sleeps.
void record_run_time(const std::string& label, const CliResult& r);
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
std::string sha256_tree(const std::string& dir);
// The files under `dir` whose bytes contain `needle` (for "this secret is written nowhere"),
// skipping paths that contain `skip` when it is given.
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle,
                                          const std::string& skip = "");  // checksum of a whole tree, for "unchanged" tests

// In-process runs: the engine without the CLI, events captured.
struct Captured : Reporter {
  std::vector<EffectEvent> effects;
  std::vector<std::pair<std::string, std::string>> logs;  // level, message
  std::vector<std::string> step_outcomes;                 // "1:succeeded", ...
  std::vector<std::string> step_errors;
  void effect_end(const EffectEvent& e) override { effects.push_back(e); }
  void log(const std::string& level, const std::string& m) override { logs.emplace_back(level, m); }
  void step_end(int idx, const std::string&, const std::string& outcome, const std::string& error,
                Millis) override {
    step_outcomes.push_back(std::to_string(idx) + ":" + outcome);
    if (!error.empty()) step_errors.push_back(error);
  }
  bool logged(const std::string& needle) const;
};

struct LuaRun {
  ExecResult result;
  Captured events;
};

// Writes `code` to <dir>/rb.lua and runs it in-process with a journal at <dir>/journal.db.
LuaRun run_lua(const std::string& dir, const std::string& code, Mode mode = Mode::Live,
               const std::map<std::string, std::string>& params = {}, bool offline = false);

// What resume asks an effect after a crash: its verify() on arguments validated as the
// dispatcher would, with a bare context (artifacts in a temp dir, no deadline, no run).
json verify_effect(const std::string& effect, json args);

}  // namespace rb::test
