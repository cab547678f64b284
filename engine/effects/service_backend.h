// Services as the service.* effects see them: a definition (from service.define, kept in the
// run's state) and a backend that can tell its state, start it and stop it. service.cc owns the
// idempotence (start of a running service does nothing), the previews and the results; backends
// only act.
#pragma once
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/error.h"
#include "core/json.h"
#include "dispatch/context.h"

namespace rb {

struct ServiceDef {
  std::string name;
  std::string backend;  // process | systemd | supervisor | pm2 | compose
  std::vector<std::string> argv;
  std::string cwd;
  std::map<std::string, std::string> env;
  std::string log, pidfile;  // absolute (process backend)
  std::string health;        // URL; empty for none
  Millis stop_timeout{10'000}, start_timeout{30'000}, settle{500};
  std::string unit;             // systemd
  std::string program;          // supervisor
  std::string config;           // supervisor conf, compose file, pm2 ecosystem file
  std::string serverurl;        // supervisorctl -s
  std::string app;              // pm2 app name
  std::string compose_service;  // compose service name
  std::string project;          // compose -p
  std::string compose_command;  // compose: "docker compose" (v2), "docker-compose" (v1), "" = find out
  // process: adopt what runs without runbook's pidfile (started by hand, `python app.py &`):
  int port = 0;                    // the process listening on this TCP port
  std::vector<std::string> match;  // an exact prefix of its argv (service.define's `cmdline`)

  json to_json() const;
  static ServiceDef from_json(const json& j);
};

struct ServiceStatus {
  std::string state = "stopped";  // running | stopped | starting | partial (pm2 all: some apps run)
  pid_t pid = 0;
  std::string since;   // ISO time it started, when known
  std::string detail;  // the backend's own words ("inactive", "pidfile is stale: ...")
  bool stale = false;  // process backend: a process it leaves alone (a stale pidfile, a port
                       // held by a process that does not match `cmdline`)
  bool adopted = false;      // process backend: found by port/cmdline, not from runbook's pidfile
  uint64_t start_ticks = 0;  // process backend: the pid's start time (/proc/PID/stat), when running
  bool running() const { return state == "running"; }
};

// The manager says it has no such service (supervisorctl: "no such process", compose: "no such
// service"): status() throws this, so that a preview can tell "the live run would fail" from
// "cannot look". Live it is an ordinary EffectError.
class ServiceMissing : public EffectError {
 public:
  using EffectError::EffectError;
};

// Several unrelated processes match an adoption (port, cmdline): status() throws this naming the
// pids, never picks one. A preview says the live run would fail, unless an earlier planned change
// made the process table unpredictable.
class ServiceAmbiguous : public EffectError {
 public:
  using EffectError::EffectError;
};

class ServiceBackend {
 public:
  virtual ~ServiceBackend() = default;
  virtual ServiceStatus status(EffectContext& ctx, const ServiceDef& d) = 0;
  // Called when status says it is not running. Returns when it runs (and is healthy, if the
  // definition has a health URL); fills `out` with what it observed (pid, log, waited).
  virtual void start(EffectContext& ctx, const ServiceDef& d, json& out) = 0;
  // Called when status says it runs (`cur`).
  virtual void stop(EffectContext& ctx, const ServiceDef& d, const ServiceStatus& cur, json& out) = 0;
  virtual void restart(EffectContext& ctx, const ServiceDef& d, const ServiceStatus& cur, json& out);
  // For a dry-run's preview of `verb` (start, stop, restart) from state `cur`: why apply would
  // certainly fail (a missing working directory or program, a unit systemd does not know, a
  // process we may not signal), or "" when it may work. Reads the world, changes nothing. Only
  // definite refusals: anything apply might accept returns "". `paths_may_appear`: an earlier
  // planned change (of another module) may create files, so a missing path proves nothing.
  virtual std::string would_fail(EffectContext& ctx, const ServiceDef& d, const std::string& verb,
                                 const ServiceStatus& cur, bool paths_may_appear) {
    return "";
  }
  // For a preview, before the backend is asked anything: why it certainly cannot reach the
  // service (the manager's command is not on PATH, a compose file does not exist), or "".
  virtual std::string unreachable(const ServiceDef& d) const;
  // The commands a CLI backend issues, for descriptions ("systemctl stop app"); empty for process.
  virtual std::vector<std::string> command(const ServiceDef& d, const std::string& verb) const {
    return {};
  }
};

std::unique_ptr<ServiceBackend> make_backend(const std::string& kind);
std::unique_ptr<ServiceBackend> make_process_backend();
std::unique_ptr<ServiceBackend> make_cli_backend(const std::string& kind);  // null if unknown

// The shared state directory for default pidfiles and logs: $RUNBOOK_STATE_DIR, else
// $XDG_STATE_HOME/runbook/services, else ~/.local/state/runbook/services.
std::string service_state_dir();

// Polls d.health (GET, 2xx) until healthy or start_timeout. `dead` is asked between polls and
// returns a reason when the service died (the wait then fails at once). Returns ms waited;
// throws EffectError naming the service, the last answer and `log_tail()` when it gives up.
int64_t wait_service_healthy(EffectContext& ctx, const ServiceDef& d,
                             const std::function<std::string()>& dead,
                             const std::function<std::string()>& log_tail);

// Dry-run predictions shared by the modules: a planned change that makes HTTP answers and the
// process table unpredictable (a service restart, a program run, a signal) records itself as
// ctx.predictions().taint.http and .proc ("service.restart app"); taint_of says what tainted a
// module's probes ("" when nothing did).
void taint_probes(EffectContext& ctx, const std::string& change);
std::string taint_of(EffectContext& ctx, const std::string& module);
// Whether an earlier planned change other than a service's (a write, a checkout, an install, a
// program run) may have created files: a missing working directory or program then proves nothing.
bool paths_may_appear(EffectContext& ctx);

void register_proc(class Registry& r);  // proc.find, proc.signal (service_proc.cc)

}  // namespace rb
