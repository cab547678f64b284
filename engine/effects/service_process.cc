// The process backend: a program the runbook starts and stops itself. The pidfile is the contract
// between runs: { pid, started (start time in clock ticks since boot, /proc/PID/stat), cmdline }.
// A pid is only ever signalled when the process behind it has that start time and command line,
// so a pidfile left over after a reboot or a pid reuse never gets an unrelated process killed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "core/error.h"
#include "core/strings.h"
#include "effects/service_backend.h"
#include "effects/util.h"
#include "os/files.h"
#include "os/process.h"
#include "os/procfs.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

struct PidRecord {
  pid_t pid = 0;
  uint64_t started = 0;
  std::string cmdline;
};

std::optional<PidRecord> read_pidfile(const std::string& path, std::string* problem) {
  std::error_code ec;
  if (!stdfs::exists(path, ec)) return std::nullopt;
  std::string text;
  try {
    text = os::read_file(path);
  } catch (const std::exception& e) {
    *problem = e.what();
    return std::nullopt;
  }
  json j = parse_json(text);
  if (j.is_discarded() || !j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer() ||
      !j.contains("started") || !j["started"].is_number_unsigned() || !j.contains("cmdline")) {
    // A bare pid (written by some other tool) identifies nothing: never act on it.
    *problem = "pidfile " + path + " is not one runbook wrote (no start time and command line)";
    return std::nullopt;
  }
  return PidRecord{j["pid"].get<pid_t>(), j["started"].get<uint64_t>(), j["cmdline"].get<std::string>()};
}

void write_pidfile(const ServiceDef& d, const os::ProcInfo& p) {
  json j{{"pid", p.pid},
         {"started", p.start_ticks},
         {"started_at", iso_utc(p.started_ms)},
         {"cmdline", p.cmdline},
         {"argv", p.argv},
         {"service", d.name},
         {"log", d.log}};
  os::atomic_write(d.pidfile, j.dump(2) + "\n", 0644);
}

void remove_pidfile(const ServiceDef& d) {
  std::error_code ec;
  stdfs::remove(d.pidfile, ec);
}

uint64_t file_size(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// What the program wrote to its log since `from` (this start only), as its last lines.
std::string log_tail(const std::string& log, uint64_t from) {
  uint64_t size = file_size(log);
  if (size <= from) return "its log " + log + " is empty";
  uint64_t start = std::max(from, size > 65536 ? size - 65536 : 0);
  std::ifstream in(log, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(start));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string t = tail_lines(text, 6, 800);
  return t.empty() ? "its log " + log + " is empty" : t + "  (log " + log + ")";
}

bool gone(pid_t pid) { return !os::is_alive(pid) && os::group_members(pid).empty(); }

class ProcessBackend : public ServiceBackend {
 public:
  ServiceStatus status(EffectContext&, const ServiceDef& d) override {
    ServiceStatus s;
    std::string problem;
    auto rec = read_pidfile(d.pidfile, &problem);
    if (!rec) {
      s.detail = problem.empty() ? "no pidfile " + d.pidfile : problem;
      s.stale = !problem.empty();
      return s;
    }
    auto p = os::read_process(rec->pid);
    if (!p || p->state == 'Z' || p->state == 'X') {
      s.detail = "pid " + std::to_string(rec->pid) + " from " + d.pidfile + " has exited";
      return s;
    }
    if (p->start_ticks != rec->started || p->cmdline != rec->cmdline) {
      s.stale = true;
      s.detail = "pidfile " + d.pidfile + " is stale: pid " + std::to_string(rec->pid) + " is now \"" +
                 truncate(p->cmdline, 120) + "\" started " + iso_utc(p->started_ms) +
                 ", not the process this service started; it is left alone";
      return s;
    }
    s.state = "running";
    s.pid = rec->pid;
    s.since = iso_utc(p->started_ms);
    return s;
  }

  void start(EffectContext& ctx, const ServiceDef& d, json& out) override {
    std::error_code ec;
    if (!d.cwd.empty() && !stdfs::is_directory(d.cwd, ec))
      throw EffectError(d.name + ": working directory " + d.cwd + " does not exist");
    for (const auto& f : {d.log, d.pidfile}) {
      stdfs::create_directories(stdfs::path(f).parent_path(), ec);
      if (ec) throw EffectError(d.name + ": cannot create " + stdfs::path(f).parent_path().string() + ": " + ec.message());
    }
    uint64_t log_from = file_size(d.log);
    auto tail = [&] { return log_tail(d.log, log_from); };
    os::Detached child = os::spawn_detached({d.argv, d.cwd, d.env, d.log});
    if (!child.error.empty()) throw EffectError(d.name + ": " + child.error);
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
    };
    auto info = os::read_process(child.pid);
    auto died = [&](const std::string& when) {
      remove_pidfile(d);
      throw EffectError(d.name + " exited " + when + ": " + tail(),
                        json{{"name", d.name}, {"state", "stopped"}, {"pid", child.pid}, {"log", d.log}});
    };
    if (!info || info->state == 'Z') died("at once");
    write_pidfile(d, *info);
    ctx.note(d.name + ": started pid " + std::to_string(child.pid) + ": " + display_argv(d.argv) +
             " (log " + d.log + ")");
    // Same pid and same start time: still our process (a pid cannot be reused while it lives).
    auto ours_alive = [&] {
      auto st = os::read_stat(child.pid);
      return st && st->start_ticks == info->start_ticks && st->state != 'Z' && st->state != 'X';
    };
    int64_t waited = 0;
    if (!d.health.empty()) {
      try {
        waited = wait_service_healthy(
            ctx, d, [&]() -> std::string { return ours_alive() ? "" : "exited"; }, tail);
      } catch (const EffectError& e) {
        if (!ours_alive()) remove_pidfile(d);
        throw;
      }
      out["healthy"] = true;
    } else {
      auto until = t0 + ctx.bound(d.settle);
      while (std::chrono::steady_clock::now() < until) {
        if (!ours_alive()) died("during startup (within " + format_duration(elapsed()) + ")");
        ctx.check_interrupt();
        std::this_thread::sleep_for(Millis(20));
      }
      if (!ours_alive()) died("during startup (within " + format_duration(elapsed()) + ")");
      waited = elapsed().count();
    }
    // A launcher (a shell wrapper, a pyenv shim) may exec the real program after we recorded it:
    // same process, new command line. Record what a later stop will see.
    if (auto now = os::read_process(child.pid); now && now->start_ticks == info->start_ticks &&
                                                 now->cmdline != info->cmdline)
      write_pidfile(d, *now);
    out["pid"] = child.pid;
    out["log"] = d.log;
    out["pidfile"] = d.pidfile;
    out["waited"] = waited;
  }

  std::string would_fail(EffectContext&, const ServiceDef& d, const std::string& verb, const ServiceStatus& cur,
                         bool paths_may_appear) override {
    // A stop (and the stop half of a restart) signals the pid the pidfile names: one we may not
    // signal (another user's) is refused.
    if (verb != "start" && cur.running() && cur.pid > 0 && ::kill(cur.pid, 0) != 0 && errno == EPERM)
      return d.name + ": cannot signal pid " + std::to_string(cur.pid) + ": " + std::strerror(EPERM);
    if (verb == "stop" || paths_may_appear) return "";
    // What start() checks before it spawns, in the same order and words.
    std::error_code ec;
    if (!d.cwd.empty() && !stdfs::is_directory(d.cwd, ec))
      return d.name + ": working directory " + d.cwd + " does not exist";
    for (const auto& f : {d.log, d.pidfile}) {
      // create_directories needs the nearest existing ancestor to be a directory we may write.
      stdfs::path dir = stdfs::path(f).parent_path();
      int depth = 0;
      while (!dir.empty() && !stdfs::exists(dir, ec) && dir != dir.parent_path() && ++depth < 256)
        dir = dir.parent_path();
      if (dir.empty() || depth == 0) continue;  // the directory itself exists (or f has no directory)
      if (!stdfs::is_directory(dir, ec) || ::access(dir.c_str(), W_OK | X_OK) != 0)
        return d.name + ": cannot create " + stdfs::path(f).parent_path().string() + ": " +
               (stdfs::is_directory(dir, ec) ? std::strerror(EACCES) : dir.string() + " is not a directory");
    }
    if (d.argv.empty() || os::which(d.argv[0]).empty())
      return d.name + ": " + (d.argv.empty() ? std::string("empty argv") : os::not_found_text(d.argv[0]));
    return "";
  }

  void stop(EffectContext& ctx, const ServiceDef& d, const ServiceStatus& cur, json& out) override {
    std::string problem;
    auto rec = read_pidfile(d.pidfile, &problem);
    if (!rec || rec->pid != cur.pid) throw EffectError(d.name + ": pidfile " + d.pidfile + " changed while stopping");
    pid_t pid = rec->pid;
    auto st = os::read_stat(pid);
    bool group = st && st->pgid == pid;
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0).count();
    };
    int rc = os::signal_if_same(pid, rec->started, SIGTERM);
    if (rc != 0 && rc != ESRCH) throw EffectError(d.name + ": cannot signal pid " + std::to_string(pid) + ": " + std::strerror(rc));
    // The leader was verified a moment ago; its group id cannot be reused while the group has members.
    if (group) ::kill(-pid, SIGTERM);
    auto finished = [&] { return group ? gone(pid) : !os::is_alive(pid); };
    auto until = t0 + ctx.bound(d.stop_timeout);
    std::string sig = "TERM";
    while (!finished() && std::chrono::steady_clock::now() < until) {
      try {
        ctx.check_interrupt();
      } catch (const DeadlineExceeded&) {
        break;  // the step is out of time: finish the job with KILL rather than leave it half done
      }
      ctx.progress(d.name + ": waiting for pid " + std::to_string(pid) + " to exit after TERM");
      std::this_thread::sleep_for(Millis(50));
    }
    if (!finished()) {
      sig = "KILL";
      ctx.note(d.name + " (pid " + std::to_string(pid) + ") did not exit within " +
               format_duration(Millis(elapsed())) + " of TERM; sending KILL");
      os::signal_if_same(pid, rec->started, SIGKILL);
      if (group) ::kill(-pid, SIGKILL);
      auto hard = std::chrono::steady_clock::now() + Millis(5000);
      while (!finished() && std::chrono::steady_clock::now() < hard) std::this_thread::sleep_for(Millis(20));
      if (!finished())
        throw EffectError(d.name + ": pid " + std::to_string(pid) + " still exists after KILL",
                          json{{"name", d.name}, {"state", "running"}, {"pid", pid}});
    }
    remove_pidfile(d);
    out["signal"] = sig;
    out["waited"] = elapsed();
  }
};

}  // namespace

std::unique_ptr<ServiceBackend> make_process_backend() { return std::make_unique<ProcessBackend>(); }

}  // namespace rb
