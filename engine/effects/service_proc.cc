// proc.find / proc.signal: `pkill -f` made safe. Processes are matched on what they are (exe,
// cwd, user) as well as on their command line, the runbook and its ancestors are never matched,
// and a signal reaches only a process whose start time is still the one that was listed.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <unistd.h>

#include <re2/re2.h>

#include "core/clock.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/service_backend.h"
#include "effects/util.h"
#include "os/procfs.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

// argv_match is an RE2 regular expression: it is user-supplied and meets command lines of any
// length (a JVM classpath is tens of KB), so it must match in linear time, which RE2 does and
// the C++ standard library's regex (recursive backtracking) does not. Lua's %-escapes are translated so a Lua-minded
// pattern ("app%.py", "%d+") means what its author meant.
std::string lua_escapes_to_regex(const std::string& s) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 1 < s.size()) {
      char d = s[++i];
      switch (d) {
        case 'd': out += "\\d"; break;
        case 'D': out += "\\D"; break;
        case 's': out += "\\s"; break;
        case 'S': out += "\\S"; break;
        case 'w': out += in_class ? "a-zA-Z0-9" : "[a-zA-Z0-9]"; break;
        case 'W': out += in_class ? "\\W" : "[^a-zA-Z0-9]"; break;
        case 'a': out += in_class ? "a-zA-Z" : "[a-zA-Z]"; break;
        case 'l': out += in_class ? "a-z" : "[a-z]"; break;
        case 'u': out += in_class ? "A-Z" : "[A-Z]"; break;
        case 'x': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
        default:
          if (std::isalnum(static_cast<unsigned char>(d))) {
            out += '%';
            out += d;
          } else {
            out += '\\';
            out += d;
          }
      }
      continue;
    }
    if (c == '\\' && i + 1 < s.size()) {
      out += c;
      out += s[++i];
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < s.size() && s[i + 1] == '^') out += s[++i];
      if (i + 1 < s.size() && s[i + 1] == ']') out += s[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

std::string real_path(const std::string& p) {
  std::error_code ec;
  auto c = stdfs::canonical(p, ec);
  return ec ? stdfs::absolute(p, ec).lexically_normal().string() : c.string();
}

std::string base_name(const std::string& p) { return stdfs::path(p).filename().string(); }

struct Filter {
  std::string exe, exe_real, cwd, user, pattern;
  std::shared_ptr<const RE2> re;
  pid_t pid = 0;
  bool any() const { return !exe.empty() || re || !cwd.empty() || !user.empty() || pid > 0; }
};

Filter filter_of(const Args& a) {
  Filter f;
  f.exe = a.str_or("exe", "");
  if (f.exe.find('/') != std::string::npos) f.exe_real = real_path(f.exe);
  if (a.has("cwd")) f.cwd = real_path(a.str("cwd"));
  f.user = a.str_or("user", "");
  int64_t pid = a.integer_or("pid", 0);
  if (pid < 0 || pid > 0x3fffffff)  // PID_MAX_LIMIT is 2^22; a cast would wrap to another pid
    throw ArgError("bad argument 'pid' to '" + a.effect() + "' (a process id expected, got " +
                   std::to_string(pid) + ")");
  f.pid = static_cast<pid_t>(pid);
  if (a.has("argv_match")) {
    f.pattern = a.str("argv_match");
    RE2::Options o;
    o.set_log_errors(false);
    // Bytes, as the command line is: no UTF-8 decoding of either side.
    o.set_encoding(RE2::Options::EncodingLatin1);
    auto re = std::make_shared<const RE2>(lua_escapes_to_regex(f.pattern), o);
    if (!re->ok())
      throw ArgError("bad argument 'argv_match' to '" + a.effect() + "' (invalid regular expression \"" +
                     truncate(f.pattern, 200) + "\": " + re->error() + ")");
    f.re = std::move(re);
  }
  return f;
}

bool exe_matches(const Filter& f, const os::ProcInfo& p) {
  std::string exe = p.exe;
  if (auto del = exe.rfind(" (deleted)"); del != std::string::npos && del + 10 == exe.size()) exe.erase(del);
  std::string argv0 = p.argv.empty() ? "" : p.argv[0];
  if (!f.exe_real.empty()) return exe == f.exe_real || argv0 == f.exe || (!argv0.empty() && real_path(argv0) == f.exe_real);
  // A bare name: the executable's file name or argv[0]'s ("python3" for /usr/bin/python3.11
  // started as python3).
  return base_name(exe) == f.exe || base_name(argv0) == f.exe;
}

bool user_matches(const Filter& f, const os::ProcInfo& p) {
  if (p.user == f.user) return true;
  return !f.user.empty() && std::all_of(f.user.begin(), f.user.end(), ::isdigit) &&
         static_cast<uid_t>(std::stoul(f.user)) == p.uid;
}

json proc_json(const os::ProcInfo& p) {
  return json{{"pid", p.pid},       {"ppid", p.ppid},       {"cmdline", p.cmdline},
              {"argv", p.argv},     {"exe", p.exe},         {"cwd", p.cwd},
              {"user", p.user},     {"started", iso_utc(p.started_ms)},
              {"started_ms", p.started_ms}, {"start_ticks", p.start_ticks}};
}

// The matching processes, by pid, never the runbook itself, its ancestors or a kernel thread.
std::vector<os::ProcInfo> find(const Filter& f) {
  auto protected_pids = os::self_and_ancestors();
  std::vector<os::ProcInfo> out;
  for (auto& p : os::list_processes()) {
    if (std::find(protected_pids.begin(), protected_pids.end(), p.pid) != protected_pids.end()) continue;
    if (p.argv.empty() || p.state == 'Z' || p.state == 'X') continue;  // kernel threads, zombies
    if (f.pid > 0 && p.pid != f.pid) continue;
    if (!f.exe.empty() && !exe_matches(f, p)) continue;
    if (!f.cwd.empty() && p.cwd != f.cwd) continue;
    if (!f.user.empty() && !user_matches(f, p)) continue;
    if (f.re && !RE2::PartialMatch(p.cmdline, *f.re)) continue;
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; });
  return out;
}

std::vector<ArgSpec> filter_args() {
  return {opt("exe", ArgType::String, "the executable: a path (compared resolved), or a file name matched against the executable's and argv[0]'s"),
          opt("argv_match", ArgType::String, "a regular expression searched in the command line (argv joined by spaces), in RE2 syntax (Perl-like, matched in linear time: no backreferences or lookaround), byte by byte; Lua's %-escapes work too: \"app%.py\", \"%d+\""),
          opt("cwd", ArgType::Path, "the process's working directory (exact, resolved)"),
          opt("user", ArgType::String, "user name or uid"),
          opt("pid", ArgType::Int, "one pid")};
}

std::string describe_filter(const Args& a) {
  std::vector<std::string> parts;
  for (const char* k : {"exe", "argv_match", "cwd", "user", "pid"})
    if (a.has(k)) parts.push_back(std::string(k) + "=" + (a.at(k).is_string() ? a.str(k) : a.at(k).dump()));
  return parts.empty() ? "all processes" : "processes with " + join(parts, ", ");
}

std::string list_text(const std::vector<os::ProcInfo>& ps) {
  std::vector<std::string> items;
  for (const auto& p : ps) items.push_back(std::to_string(p.pid) + " (" + truncate(p.cmdline, 80) + ")");
  return join(items, ", ");
}

bool terminating(int sig) { return sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGQUIT || sig == SIGHUP; }

int signal_arg(const Args& a) {
  int sig = os::signal_number(a.str("signal"));
  if (!sig) throw ArgError("bad argument 'signal' to 'proc.signal' (a signal name like \"TERM\", \"KILL\", \"HUP\" expected, got \"" + a.str("signal") + "\")");
  return sig;
}

void check_signal_args(const Args& a) {
  Filter f = filter_of(a);
  if (!f.any())
    throw ArgError("bad argument to 'proc.signal' (give at least one of exe, argv_match, cwd, user, pid: it would hit every process)");
  if (f.pid == 1) throw ArgError("bad argument 'pid' to 'proc.signal' (refuses pid 1)");
  if (f.pid == ::getpid()) throw ArgError("bad argument 'pid' to 'proc.signal' (refuses the runbook itself)");
  if (f.pid == ::getppid()) throw ArgError("bad argument 'pid' to 'proc.signal' (refuses the runbook's parent)");
  signal_arg(a);
}

json pids_json(const std::vector<pid_t>& v) {
  json j = json::array();
  for (pid_t p : v) j.push_back(p);
  return j;
}

json do_signal(EffectContext& ctx, const Args& a) {
  check_signal_args(a);
  Filter f = filter_of(a);
  int sig = signal_arg(a);
  std::string sname = os::signal_name(sig);
  auto found = find(f);
  json procs = json::array();
  for (const auto& p : found) procs.push_back(proc_json(p));
  if (a.has("max") && static_cast<int64_t>(found.size()) > a.integer("max"))
    throw EffectError(std::to_string(found.size()) + " processes match, more than max = " +
                          std::to_string(a.integer("max")) + "; nothing was signalled: " + list_text(found),
                      json{{"processes", procs}, {"signalled", json::array()}});
  std::vector<pid_t> signalled, exited, killed, survivors;
  std::vector<std::string> failures;
  std::map<pid_t, uint64_t> ticks;
  for (const auto& p : found) {
    int rc = os::signal_if_same(p.pid, p.start_ticks, sig);
    if (rc == 0) {
      signalled.push_back(p.pid);
      ticks[p.pid] = p.start_ticks;
    } else if (rc == ESRCH) {
      exited.push_back(p.pid);  // gone between the listing and the signal
    } else {
      failures.push_back(std::to_string(p.pid) + ": " + std::strerror(rc));
    }
  }
  if (found.empty()) ctx.note("proc.signal: no process matches " + describe_filter(a));
  else ctx.note("proc.signal: sent " + sname + " to " + list_text(found));
  auto alive = [&](pid_t pid) {
    auto st = os::read_stat(pid);
    return st && st->start_ticks == ticks[pid] && st->state != 'Z' && st->state != 'X';
  };
  if (terminating(sig) && !signalled.empty()) {
    Millis wait = a.duration("wait");
    std::optional<Millis> kill_after;
    if (a.has("kill_after")) kill_after = a.duration("kill_after");
    if (kill_after && wait < *kill_after + Millis(5000)) wait = *kill_after + Millis(5000);
    auto t0 = std::chrono::steady_clock::now();
    auto until = t0 + ctx.bound(wait);
    std::vector<pid_t> pending = signalled;
    bool sent_kill = sig == SIGKILL;
    while (!pending.empty()) {
      std::vector<pid_t> still;
      for (pid_t p : pending) (alive(p) ? still : exited).push_back(p);
      pending = still;
      auto now = std::chrono::steady_clock::now();
      if (pending.empty() || now >= until) break;
      if (kill_after && !sent_kill && now - t0 >= *kill_after) {
        for (pid_t p : pending)
          if (os::signal_if_same(p, ticks[p], SIGKILL) == 0) killed.push_back(p);
        sent_kill = true;
        if (!killed.empty()) ctx.note("proc.signal: sent KILL to " + join([&] {
          std::vector<std::string> s;
          for (pid_t p : killed) s.push_back(std::to_string(p));
          return s;
        }(), ", ") + " after " + format_duration(*kill_after));
      }
      ctx.check_interrupt();
      ctx.progress("waiting for " + std::to_string(pending.size()) + " processes to exit after " + sname);
      std::this_thread::sleep_for(Millis(50));
    }
    survivors = pending;
  }
  std::sort(exited.begin(), exited.end());
  json result{{"signal", sname},           {"signalled", pids_json(signalled)}, {"exited", pids_json(exited)},
              {"killed", pids_json(killed)}, {"still_running", pids_json(survivors)}, {"processes", procs}};
  if (!failures.empty())
    throw EffectError("cannot signal " + join(failures, "; "), result);
  if (!survivors.empty()) {
    std::vector<std::string> s;
    for (pid_t p : survivors) s.push_back(std::to_string(p));
    throw EffectError("still running " + format_duration(a.duration("wait")) + " after " + sname + ": " +
                          join(s, ", ") + (a.has("kill_after") ? "" : " (kill_after = \"5s\" would send KILL)"),
                      result);
  }
  return result;
}

}  // namespace

void register_proc(Registry& r) {
  {
    Effect e;
    e.name = "proc.find";
    e.summary = "List processes by executable, command line (regex), working directory, user; never the runbook or its ancestors";
    e.kind = Kind::Probe;
    e.args = filter_args();
    e.returns = "{ { pid, ppid, cmdline, argv, exe, cwd, user, started (ISO time), started_ms }, ... } by pid";
    e.describe = [](const Args& a) { return "find " + describe_filter(a); };
    e.apply = [](EffectContext&, const Args& a) -> json {
      json out = json::array();
      for (const auto& p : find(filter_of(a))) out.push_back(proc_json(p));
      return out;
    };
    e.planned = [](const Args&, const json&) { return json::array(); };
    // After a planned change that starts, stops or signals processes, the list is unknown.
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      std::string after = taint_of(ctx, "proc");
      if (after.empty()) return nullptr;
      return unknown_value("proc.find " + describe_filter(a) + " after " + after);
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "proc.signal";
    e.summary = "Signal exactly the processes proc.find lists (replaces pkill -f); waits for them to exit, KILL after kill_after";
    e.kind = Kind::Change;
    e.checkable = true;
    e.args = filter_args();
    e.args.push_back(opt("signal", ArgType::String, "TERM, KILL, INT, HUP, QUIT, USR1, USR2, ...", "TERM"));
    e.args.push_back(opt("wait", ArgType::Duration, "for TERM/INT/QUIT/HUP/KILL: how long to wait for them to exit (0s: don't)", "10s"));
    e.args.push_back(opt("kill_after", ArgType::Duration, "send KILL to those still running after this long"));
    e.args.push_back(opt("max", ArgType::Int, "refuse (signal nothing) if more processes than this match"));
    e.returns = "{ signal, signalled = { pids }, exited = { pids }, killed = { pids }, still_running = { pids }, processes = { as proc.find } }";
    e.results = {{"signal", "string", "the signal sent"}, {"signalled", "list", "pids"}, {"exited", "list", "pids that exited"}, {"killed", "list", "pids killed after the timeout"}, {"still_running", "list", "pids"}, {"processes", "list", "as proc.find"}};
    e.describe = [](const Args& a) { return "send " + os::signal_name(os::signal_number(a.str("signal"))) + " to " + describe_filter(a); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      check_signal_args(a);
      auto found = find(filter_of(a));
      json procs = json::array();
      for (const auto& p : found) procs.push_back(proc_json(p));
      std::string sname = os::signal_name(signal_arg(a));
      std::string text = found.empty() ? "no process matches; nothing would be signalled"
                                       : "would send " + sname + " to " + std::to_string(found.size()) +
                                             (found.size() == 1 ? " process: " : " processes: ") + list_text(found);
      if (a.has("max") && static_cast<int64_t>(found.size()) > a.integer("max")) {
        // Apply refuses the same way, unless an earlier planned change alters who runs.
        if (taint_of(ctx, "proc").empty())
          throw WouldFail(std::to_string(found.size()) + " processes match, more than max = " +
                              std::to_string(a.integer("max")) + "; nothing would be signalled: " + list_text(found),
                          json{{"processes", procs}, {"signalled", json::array()}});
        text += " — more than max = " + std::to_string(a.integer("max")) + ", so it would refuse";
      }
      return json{{"text", text}, {"processes", procs}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
      // Nothing matched and nothing planned before changed who runs: nothing changes.
      bool none = pv.is_object() && pv.contains("processes") && pv["processes"].is_array() &&
                  pv["processes"].empty() && !pv.contains("error");
      if (none && taint_of(ctx, "proc").empty()) return;
      taint_probes(ctx, "proc.signal " + os::signal_name(os::signal_number(a.str("signal"))) + " to " +
                            describe_filter(a));
    };
    e.planned = [](const Args& a, const json& pv) {
      json pids = json::array(), procs = json::array();
      if (pv.is_object() && pv.contains("processes")) {
        procs = pv["processes"];
        for (const auto& p : procs) pids.push_back(p["pid"]);
      }
      return json{{"signal", os::signal_name(os::signal_number(a.str("signal")))},
                  {"signalled", pids}, {"exited", pids}, {"killed", json::array()},
                  {"still_running", json::array()}, {"processes", procs}};
    };
    e.verify = [](EffectContext&, const Args& a) -> json {
      // Done if nothing matching is left to signal (for a terminating signal); otherwise unknown.
      if (!terminating(os::signal_number(a.str("signal")))) return nullptr;
      return find(filter_of(a)).empty();
    };
    e.apply = [](EffectContext& ctx, const Args& a) { return do_signal(ctx, a); };
    r.add(std::move(e));
  }
}

}  // namespace rb
