#include "effects/util.h"

#include "core/strings.h"

namespace rb {

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

os::ProcessResult run_process_checked(EffectContext& ctx, os::ProcessSpec spec, bool check,
                                      const std::string& progress_label) {
  Millis asked = spec.timeout;
  spec.timeout = ctx.bound(spec.timeout);
  std::string prog = spec.argv.empty() ? "?" : spec.argv[0];
  os::ProcessResult r = os::run_process(spec, [&](Millis elapsed) {
    ctx.check_interrupt();
    if (!progress_label.empty() && elapsed.count() > 1000)
      ctx.progress(progress_label + " (" + format_duration(elapsed) + ")");
  });
  if (!r.spawn_error.empty()) throw EffectError(r.spawn_error, process_json(r));
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

}  // namespace rb
