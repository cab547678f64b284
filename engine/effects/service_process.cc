// The process backend: a program the runbook starts and stops itself. The pidfile holds the pid
// alone, as every other tool expects; the contract between runs is runbook's record beside it
// (PIDFILE.runbook): { pid, started (start time in clock ticks since boot, /proc/PID/stat), cmdline }.
// A pid is only ever signalled when the process behind it has that start time and command line,
// so a pidfile left over after a reboot or a pid reuse never gets an unrelated process killed.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
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

constexpr size_t kPidfileMax = 4096;        // "1234\n"; anything longer is not a pidfile
constexpr size_t kRecordMax = 1024 * 1024;  // the record holds the command line (a JVM's: 40 KB)

std::string record_path(const std::string& pidfile) { return pidfile + ".runbook"; }

// At most `limit` bytes of a regular file (never a FIFO or a device, whose read could block or
// never end). Sets *too_big when the file holds more.
std::string read_bounded(const std::string& path, size_t limit, bool* too_big) {
  *too_big = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + " is not a regular file");
  }
  std::string out;
  char buf[16384];
  while (out.size() <= limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit + 1 - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (out.size() > limit) {
    *too_big = true;
    out.resize(limit);
  }
  return out;
}

// A record runbook wrote (the sidecar, or an old-style JSON pidfile): { pid, started, cmdline }.
std::optional<PidRecord> parse_record(const std::string& text) {
  json j = parse_json(text);
  if (j.is_discarded() || !j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer() ||
      !j.contains("started") || !j["started"].is_number_unsigned() || !j.contains("cmdline") ||
      !j["cmdline"].is_string())
    return std::nullopt;
  int64_t pid = j["pid"].get<int64_t>();
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return std::nullopt;
  return PidRecord{static_cast<pid_t>(pid), j["started"].get<uint64_t>(), j["cmdline"].get<std::string>()};
}

// For a message: control bytes and non-ASCII as '?'.
std::string printable(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return o;
}

// "1234\n" (surrounding blanks allowed, as other tools write it): the pid, or 0.
pid_t parse_bare_pid(const std::string& text) {
  size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return 0;
  std::string digits = text.substr(b, e - b + 1);
  if (digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  int64_t v = std::stoll(digits);
  return v > 0 && v <= std::numeric_limits<pid_t>::max() ? static_cast<pid_t>(v) : 0;
}

// The pidfile holds the pid alone ("1234\n", what kill $(cat f), systemd's PIDFile= and monit
// read); runbook's record of the process (start time, command line) is beside it in
// PIDFILE.runbook, written first and removed with it. A pid is acted on only when both agree:
// a pidfile another tool wrote (no record) or rewrote (another pid) is refused, with `problem`
// naming it. An old-style pidfile (the JSON record itself) is still read.
std::optional<PidRecord> read_pidfile(const std::string& path, std::string* problem) {
  std::error_code ec;
  if (!stdfs::exists(stdfs::symlink_status(path, ec)) || ec) return std::nullopt;
  const std::string rec_path = record_path(path);
  auto refuse = [&](const std::string& why) {
    *problem = "pidfile " + path + " is not one runbook wrote (" + why + "); it is left alone";
    return std::nullopt;
  };
  std::string text;
  bool too_big = false;
  try {
    text = read_bounded(path, kRecordMax, &too_big);
  } catch (const std::exception& e) {
    *problem = e.what();
    return std::nullopt;
  }
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    if (too_big) return refuse("over " + std::to_string(kRecordMax / 1024) + " KiB");
    auto old = parse_record(text);
    if (!old) return refuse("no start time and command line");
    return old;
  }
  if (too_big || text.size() > kPidfileMax) return refuse("over " + std::to_string(kPidfileMax) + " bytes");
  if (first == std::string::npos) return refuse("it is empty");
  pid_t pid = parse_bare_pid(text);
  if (pid == 0) return refuse("it holds no pid: \"" + printable(text.substr(first, 40)) + "\"");
  if (!stdfs::exists(stdfs::symlink_status(rec_path, ec)))
    return refuse("no record " + rec_path + " with its start time and command line");
  std::string rec_text;
  try {
    rec_text = read_bounded(rec_path, kRecordMax, &too_big);
  } catch (const std::exception& e) {
    return refuse(std::string("its record: ") + e.what());
  }
  if (too_big) return refuse("its record " + rec_path + " is over " + std::to_string(kRecordMax / 1024) + " KiB");
  auto rec = parse_record(rec_text);
  if (!rec) return refuse("its record " + rec_path + " has no pid, start time and command line");
  if (rec->pid != pid) {
    *problem = "pidfile " + path + " names pid " + std::to_string(pid) + " but runbook's record " + rec_path +
               " names pid " + std::to_string(rec->pid) + ": rewritten by another tool? It is left alone";
    return std::nullopt;
  }
  return rec;
}

void write_pidfile(const ServiceDef& d, const os::ProcInfo& p) {
  json j{{"pid", p.pid},
         {"started", p.start_ticks},
         {"started_at", iso_utc(p.started_ms)},
         {"cmdline", p.cmdline},
         {"argv", p.argv},
         {"service", d.name},
         {"log", d.log}};
  // The record first: a pidfile runbook wrote always has its record.
  os::atomic_write(record_path(d.pidfile), j.dump(2) + "\n", 0644);
  os::atomic_write(d.pidfile, std::to_string(p.pid) + "\n", 0644);
}

void remove_pidfile(const ServiceDef& d) {
  std::error_code ec;
  stdfs::remove(d.pidfile, ec);
  stdfs::remove(record_path(d.pidfile), ec);
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

std::string argv_text(const std::vector<std::string>& argv) { return truncate(display_argv(argv), 160); }

std::string cmdline_of(pid_t pid) {
  auto a = os::read_argv(pid, 4096);
  return a ? argv_text(*a) : "?";
}

// "pid 12 (python3 app.py), pid 13 (python3 app.py)"
std::string pids_text(const std::vector<pid_t>& pids) {
  std::string t;
  for (size_t i = 0; i < pids.size() && i < 10; ++i)
    t += (i ? ", " : "") + std::string("pid ") + std::to_string(pids[i]) + " (" + cmdline_of(pids[i]) + ")";
  if (pids.size() > 10) t += " and " + std::to_string(pids.size() - 10) + " more";
  return t;
}

// Whether `anc` is a proper ancestor of `pid` (walking ppid, bounded).
bool is_ancestor(pid_t anc, pid_t pid) {
  for (int i = 0; i < 4096 && pid > 1; ++i) {
    auto st = os::read_stat(pid);
    if (!st) return false;
    pid = st->ppid;
    if (pid == anc) return true;
  }
  return false;
}

// One service among `pids`: the one that is an ancestor of all the others (a server's master
// and its workers hold the same socket and share a command line), or 0 when they are unrelated.
pid_t topmost(const std::vector<pid_t>& pids) {
  for (pid_t top : pids) {
    bool all = true;
    for (pid_t o : pids)
      if (o != top && !is_ancestor(top, o)) {
        all = false;
        break;
      }
    if (all) return top;
  }
  return 0;
}

// The processes a port is held by, as a user reads them: "pid 12 (python3 app.py)", or why it
// cannot tell.
std::string holders_text(int port, const os::PortHolders& h) {
  std::string t = "port " + std::to_string(port) + " is held by ";
  if (!h.pids.empty()) return t + pids_text(h.pids);
  return t + "a process this user cannot see (" + std::to_string(h.hidden) +
         " processes' descriptors are not readable)";
}

// What adoption found: a process, none, or why it refuses (in `status`).
struct Adoption {
  pid_t pid = 0;
  std::string how;   // "found by port 5000: python3 app.py"
  std::string none;  // why nothing was adopted, when something is there but does not match
};

// The process that is the service though runbook did not start it: the holder of d.port (or the
// nearest ancestor of it matching d.match), the single process matching d.match. Never the
// runbook or one of its ancestors. Throws ServiceAmbiguous for several unrelated candidates.
Adoption adopt(const ServiceDef& d) {
  Adoption out;
  std::vector<pid_t> never = os::self_and_ancestors();
  auto excluded = [&](pid_t p) { return std::find(never.begin(), never.end(), p) != never.end(); };
  auto matches = [&](pid_t p) {
    if (d.match.empty()) return true;
    auto a = os::read_argv(p);
    return a && os::argv_has_prefix(*a, d.match);
  };
  std::vector<pid_t> cands;
  std::string by;
  if (d.port > 0) {
    os::PortHolders h = os::port_holders(d.port);
    if (!h.error.empty()) throw EffectError(d.name + ": " + h.error);
    if (!h.listening) return out;
    by = "port " + std::to_string(d.port);
    for (pid_t p : h.pids) {
      // npm run dev: npm matches the cmdline, its node child holds the socket.
      pid_t q = p;
      for (int i = 0; i < 64 && q > 1; ++i) {
        if (excluded(q)) break;
        if (matches(q)) {
          if (std::find(cands.begin(), cands.end(), q) == cands.end()) cands.push_back(q);
          break;
        }
        if (d.match.empty()) break;
        auto st = os::read_stat(q);
        if (!st) break;
        q = st->ppid;
      }
    }
    if (cands.empty()) {
      out.none = holders_text(d.port, h) +
                 (d.match.empty() || h.pids.empty() ? "" : ", which does not match cmdline " + argv_text(d.match)) +
                 "; it is left alone";
      return out;
    }
    if (!d.match.empty()) by += " and cmdline " + argv_text(d.match);
  } else {
    by = "cmdline " + argv_text(d.match);
    for (const auto& p : os::list_processes()) {
      if (excluded(p.pid) || p.state == 'Z' || p.state == 'X') continue;
      if (os::argv_has_prefix(p.argv, d.match)) cands.push_back(p.pid);
    }
    if (cands.empty()) return out;
  }
  std::sort(cands.begin(), cands.end());
  pid_t top = cands.size() == 1 ? cands[0] : topmost(cands);
  if (top == 0)
    throw ServiceAmbiguous(d.name + ": " + std::to_string(cands.size()) + " processes match " + by + ": " +
                               pids_text(cands) + "; narrow cmdline (or give port) so one matches",
                           json{{"name", d.name}, {"pids", cands}});
  out.pid = top;
  out.how = "not started by runbook, found by " + by + ": " + cmdline_of(top);
  return out;
}

class ProcessBackend : public ServiceBackend {
 public:
  ServiceStatus status(EffectContext&, const ServiceDef& d) override {
    ServiceStatus s = own_status(d);
    if (s.running() || (d.port == 0 && d.match.empty())) return s;
    Adoption a = adopt(d);
    if (a.pid > 0) {
      auto st = os::read_stat(a.pid);
      if (st && st->state != 'Z' && st->state != 'X') {
        ServiceStatus ad;
        ad.state = "running";
        ad.pid = a.pid;
        ad.adopted = true;
        ad.start_ticks = st->start_ticks;
        ad.since = iso_utc(st->started_ms);
        ad.detail = a.how;
        return ad;
      }
    }
    if (!a.none.empty()) {
      s.stale = true;
      s.detail = a.none;
    }
    return s;
  }

  // What runbook's own pidfile says.
  ServiceStatus own_status(const ServiceDef& d) {
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
    s.start_ticks = rec->started;
    s.since = iso_utc(p->started_ms);
    return s;
  }

  void start(EffectContext& ctx, const ServiceDef& d, json& out) override {
    if (d.argv.empty())
      throw EffectError(d.name + ": service.define has no argv: runbook can stop a process it adopts (port, "
                        "cmdline) but cannot start one");
    std::error_code ec;
    if (!d.cwd.empty() && !stdfs::is_directory(d.cwd, ec))
      throw EffectError(d.name + ": working directory " + d.cwd + " does not exist");
    // status() adopts a matching holder, so one here is another program: the new process would
    // die with "Address already in use" (or, worse, run beside it and answer nothing).
    if (d.port > 0) {
      os::PortHolders h = os::port_holders(d.port);
      if (h.listening) throw EffectError(d.name + ": cannot start: " + holders_text(d.port, h));
    }
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
    // A failed start leaves nothing behind: what it started (its whole group: the program may
    // have forked before it failed) is stopped, and the pidfile removed.
    auto cleanup = [&] {
      if (info) {
        json ignored = json::object();
        try {
          terminate(ctx, d, child.pid, info->start_ticks, true, ignored, false);
        } catch (const std::exception& e) {
          ctx.note(d.name + ": could not stop what the failed start left: " + e.what());
        }
      } else if (!os::group_members(child.pid).empty()) {
        ::kill(-child.pid, SIGKILL);  // its own new group (setsid): nothing else is in it
      }
      remove_pidfile(d);
    };
    auto fail = [&](const std::string& why, const std::string& state) {
      cleanup();
      throw EffectError(why, json{{"name", d.name}, {"state", "stopped"}, {"pid", child.pid}, {"log", d.log},
                                  {"was", state}});
    };
    auto died = [&](const std::string& when) { fail(d.name + " exited " + when + ": " + tail(), "exited"); };
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
        fail(std::string(e.what()) + "; what it started was stopped", ours_alive() ? "unhealthy" : "exited");
      } catch (...) {
        cleanup();  // interrupted or out of time: a half-started service is not left running
        throw;
      }
      out["healthy"] = true;
    } else {
      auto until = t0 + ctx.bound(d.settle);
      try {
        while (std::chrono::steady_clock::now() < until) {
          if (!ours_alive()) died("during startup (within " + format_duration(elapsed()) + ")");
          ctx.check_interrupt();
          std::this_thread::sleep_for(Millis(20));
        }
      } catch (const EffectError&) {
        throw;
      } catch (...) {
        cleanup();
        throw;
      }
      if (!ours_alive()) died("during startup (within " + format_duration(elapsed()) + ")");
      waited = elapsed().count();
    }
    // With a port, running is not enough: it must listen there (it, or a process it started).
    if (d.port > 0) {
      auto until = t0 + ctx.bound(d.start_timeout);
      auto ours = [&](pid_t p) {
        auto st = os::read_stat(p);
        return p == child.pid || (st && st->pgid == child.pid) || is_ancestor(child.pid, p);
      };
      std::string last;
      try {
        while (true) {
          os::PortHolders h = os::port_holders(d.port);
          bool mine = std::any_of(h.pids.begin(), h.pids.end(), ours);
          if (mine) break;
          if (h.listening) {
            // Someone else took the port between the check and the bind.
            fail(d.name + " started, but " + holders_text(d.port, h) + "; what it started was stopped", "port taken");
          }
          if (!ours_alive()) died("before it listened on port " + std::to_string(d.port));
          if (std::chrono::steady_clock::now() >= until)
            fail(d.name + " did not listen on port " + std::to_string(d.port) + " within " +
                     format_duration(elapsed()) + " (start_timeout); what it started was stopped: " + tail(),
                 "not listening");
          ctx.check_interrupt();
          ctx.progress("waiting for " + d.name + " to listen on port " + std::to_string(d.port));
          std::this_thread::sleep_for(Millis(50));
        }
      } catch (const EffectError&) {
        throw;
      } catch (...) {
        cleanup();
        throw;
      }
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

  std::string would_fail(EffectContext& ctx, const ServiceDef& d, const std::string& verb, const ServiceStatus& cur,
                         bool paths_may_appear) override {
    // A stop (and the stop half of a restart) signals the pid the pidfile names (or the adopted
    // one): one we may not signal (another user's) is refused.
    if (verb != "start" && cur.running() && cur.pid > 0 && ::kill(cur.pid, 0) != 0 && errno == EPERM)
      return d.name + ": cannot signal pid " + std::to_string(cur.pid) + ": " + std::strerror(EPERM);
    if (verb == "stop") return "";
    if (d.argv.empty())
      return d.name + ": service.define has no argv: runbook can stop a process it adopts (port, cmdline) but "
                      "cannot start one";
    // A port held by another program (status adopts a matching one) fails the start, unless an
    // earlier planned change (a stop, a signal) may free it. After the stop half of a restart, it
    // is free.
    if (d.port > 0 && !cur.running() && cur.detail != "planned" && taint_of(ctx, "proc").empty()) {
      os::PortHolders h = os::port_holders(d.port);
      if (h.listening) return d.name + ": cannot start: " + holders_text(d.port, h);
    }
    if (paths_may_appear) return "";
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
    pid_t pid = cur.pid;
    uint64_t ticks = cur.start_ticks;
    if (!cur.adopted) {
      std::string problem;
      auto rec = read_pidfile(d.pidfile, &problem);
      if (!rec || rec->pid != cur.pid) throw EffectError(d.name + ": pidfile " + d.pidfile + " changed while stopping");
      ticks = rec->started;
    }
    if (pid <= 0 || ticks == 0) throw EffectError(d.name + ": no process to stop");
    auto st = os::read_stat(pid);
    // Its group too when it leads one (a server and its workers) — never a group the runbook is in.
    bool group = st && st->pgid == pid && ::getpgrp() != pid;
    auto t0 = std::chrono::steady_clock::now();
    terminate(ctx, d, pid, ticks, group, out);
    if (cur.adopted) {
      // Runbook's own pidfile, if any, names a process that has exited: it describes nothing now.
      std::string problem;
      if (auto rec = read_pidfile(d.pidfile, &problem); rec && !os::is_alive(rec->pid)) remove_pidfile(d);
      out["adopted"] = true;
    } else {
      remove_pidfile(d);
    }
    if (d.port > 0) {
      // The process is gone, so its sockets are closed; a holder now is another process (a child
      // outside its group that inherited the socket, or a supervisor that restarted it).
      auto until = std::max(t0 + ctx.bound(d.stop_timeout), std::chrono::steady_clock::now() + Millis(2000));
      os::PortHolders h = os::port_holders(d.port);
      while (h.listening && std::chrono::steady_clock::now() < until) {
        ctx.progress(d.name + ": waiting for port " + std::to_string(d.port) + " to be released");
        std::this_thread::sleep_for(Millis(50));
        h = os::port_holders(d.port);
      }
      if (h.listening)
        throw EffectError(d.name + ": pid " + std::to_string(pid) + " was stopped, but " + holders_text(d.port, h) +
                              " after " + format_duration(Millis(std::chrono::duration_cast<Millis>(
                                              std::chrono::steady_clock::now() - t0).count())),
                          json{{"name", d.name}, {"state", "stopped"}, {"pid", pid}, {"port", d.port},
                               {"port_held_by", h.pids}});
      out["port_released"] = true;
    }
  }

  // TERM to `pid` (and its group), KILL after stop_timeout: the one way every process of this
  // backend is stopped, started by runbook or adopted. Signals only the process with that start
  // time. Fills out.signal and out.waited.
  // `interruptible`: an interrupt ends the wait for TERM (then KILL); the cleanup of a failed
  // start is not interrupted at all.
  static void terminate(EffectContext& ctx, const ServiceDef& d, pid_t pid, uint64_t ticks, bool group, json& out,
                        bool interruptible = true) {
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0).count();
    };
    int rc = os::signal_if_same(pid, ticks, SIGTERM);
    if (rc != 0 && rc != ESRCH) throw EffectError(d.name + ": cannot signal pid " + std::to_string(pid) + ": " + std::strerror(rc));
    // The leader was verified a moment ago; its group id cannot be reused while the group has members.
    if (group) ::kill(-pid, SIGTERM);
    auto finished = [&] { return group ? gone(pid) : !os::is_alive(pid); };
    auto until = t0 + ctx.bound(d.stop_timeout);
    std::string sig = "TERM";
    while (!finished() && std::chrono::steady_clock::now() < until) {
      try {
        if (interruptible) ctx.check_interrupt();
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
      os::signal_if_same(pid, ticks, SIGKILL);
      if (group) ::kill(-pid, SIGKILL);
      auto hard = std::chrono::steady_clock::now() + Millis(5000);
      while (!finished() && std::chrono::steady_clock::now() < hard) std::this_thread::sleep_for(Millis(20));
      if (!finished())
        throw EffectError(d.name + ": pid " + std::to_string(pid) + " still exists after KILL",
                          json{{"name", d.name}, {"state", "running"}, {"pid", pid}});
    }
    out["signal"] = sig;
    out["waited"] = elapsed();
  }
};

}  // namespace

std::unique_ptr<ServiceBackend> make_process_backend() { return std::make_unique<ProcessBackend>(); }

}  // namespace rb
