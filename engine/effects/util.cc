#include "effects/util.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "core/clock.h"
#include "core/secrets.h"
#include "core/strings.h"

namespace rb {
namespace stdfs = std::filesystem;

void bad_arg(const std::string& effect, const std::string& arg, const std::string& why) {
  throw ArgError("bad argument '" + arg + "' to '" + effect + "' (" + why + ")");
}

void bad_arg(const Args& a, const std::string& arg, const std::string& why) {
  bad_arg(a.effect(), arg, why);
}

json pv_or(const json& pv, const std::string& key, json def) {
  return pv.is_object() && pv.contains(key) ? pv[key] : def;
}

std::string pv_str(const json& pv, const std::string& key, const std::string& def) {
  return pv.is_object() && pv.contains(key) && pv[key].is_string() ? pv[key].get<std::string>()
                                                                   : def;
}

std::string abs_path(const std::string& p) {
  std::error_code ec;
  return stdfs::absolute(p, ec).lexically_normal().string();
}

bool exists(const std::string& p) {
  std::error_code ec;
  return stdfs::exists(stdfs::symlink_status(p, ec));
}

std::string stamped_backup_name(const std::string& name) {
  return name + ".bak-" + stamp_local(now_epoch_ms());
}

std::string size_text(uint64_t n) {
  char buf[32];
  if (n < 1024) return std::to_string(n) + " B";
  if (n < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else if (n < (1u << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.1f GiB", n / 1073741824.0);
  return buf;
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

json process_json(const os::ProcessResult& r) {
  return json{{"code", r.code},
              {"stdout", r.stdout_text},
              {"stderr", r.stderr_text},
              {"duration", r.duration.count()},
              {"timed_out", r.timed_out}};
}

std::string tail_lines(const std::string& text, size_t lines, size_t max_chars) {
  std::vector<std::string> keep;
  for (const auto& l : split(text, '\n')) {
    std::string t = trim(l);
    if (!t.empty()) keep.push_back(t);
  }
  if (keep.size() > lines) keep.erase(keep.begin(), keep.end() - static_cast<long>(lines));
  std::string out = join(keep, " | ");
  if (out.size() > max_chars) out = "…" + out.substr(out.size() - max_chars);
  return out;
}

long secret_argv_index(const EffectContext& ctx, const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i)
    if (ctx.holds_secret(argv[i])) return static_cast<long>(i);
  return -1;
}

os::ProcessResult run_process_checked(EffectContext& ctx, os::ProcessSpec spec, bool check,
                                      const std::string& progress_label, bool secret_argv_ok) {
  // The last line of defence: an effect that builds argv from a secret is a bug, refused here
  // before the secret is world-readable in /proc/PID/cmdline.
  if (!secret_argv_ok) {
    long i = secret_argv_index(ctx, spec.argv);
    if (i >= 0)
      throw EffectError("refusing to start '" + (spec.argv.empty() ? "?" : spec.argv[0]) +
                        "': argument " + std::to_string(i) +
                        " holds a secret, and every user can read a process's argv "
                        "(/proc/PID/cmdline)");
  }
  Millis asked = spec.timeout;
  spec.timeout = ctx.bound(spec.timeout);
  // Cut short by the step's deadline: the step must end within a second of it.
  if (spec.timeout < asked) spec.grace = std::min(spec.grace, os::kStopGrace);
  std::string prog = spec.argv.empty() ? "?" : spec.argv[0];
  os::ProcessResult r = os::run_process(spec, [&](Millis elapsed) {
    ctx.check_interrupt();
    if (!progress_label.empty() && elapsed.count() > 1000)
      ctx.progress(progress_label + " (" + format_duration(elapsed) + ")");
  });
  if (!r.spawn_error.empty()) throw EffectError(r.spawn_error, process_json(r));
  if (r.leftovers > 0 && !r.timed_out)
    ctx.note("stopped " + plural(r.leftovers, "process", "processes") + " that '" + prog +
             "' left running");
  if (r.timed_out) {
    bool by_step = spec.timeout < asked;
    throw EffectError("'" + prog + "' timed out after " + format_duration(spec.timeout) +
                          (by_step ? " (the step's deadline)" : "") +
                          "; its process group was stopped",
                      process_json(r));
  }
  if (check && r.code != 0) {
    std::string why = r.signal ? "was killed by signal " + std::to_string(r.signal)
                               : "exited " + std::to_string(r.code);
    std::string detail = tail_lines(r.stderr_text.empty() ? r.stdout_text : r.stderr_text);
    throw EffectError("'" + prog + "' " + why + (detail.empty() ? "" : ": " + detail),
                      process_json(r));
  }
  return r;
}

std::vector<std::string> secrets_in_text(const std::string& text) {
  std::vector<std::string> out;
  if (!text.empty()) out.push_back(text);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (value.empty()) continue;
    std::string upper = key;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (secret_name(key) || upper.find("DSN") != std::string::npos) out.push_back(value);
    if (std::string pw = url_password(value); !pw.empty()) out.push_back(pw);
  }
  return out;
}

}  // namespace rb
