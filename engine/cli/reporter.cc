#include "cli/json_out.h"
#include "cli/reporter.h"

#include "core/strings.h"
#include "lua/runbook.h"

namespace rb::cli {

std::string brief(const json& v, size_t max) {
  if (v.is_null()) return "";
  if (v.is_string()) return truncate(v.get<std::string>(), max);
  return truncate(v.dump(), max);
}

namespace {

std::string preview_text(const json& p) {
  if (p.is_string()) return p.get<std::string>();
  if (p.is_object() && p.contains("text") && p["text"].is_string()) return p["text"].get<std::string>();
  return p.is_null() ? "" : p.dump();
}

class HumanReporter : public Reporter {
 public:
  explicit HumanReporter(ReporterOptions o) : o_(o) { s_.on = o.color; }

  void run_begin(const RunRecord& run, const std::vector<std::string>& steps) override {
    total_steps_ = static_cast<int>(steps.size());
    mode_ = run.mode;
    std::string head = s_.bold(run.runbook + " " + run.version);
    std::string mode = run.mode == "live" ? s_.yellow("live") : s_.cyan(run.mode);
    if (run.mode == "dry-run") mode = s_.cyan(run.offline ? "dry-run, offline: nothing will change, nothing is probed"
                                                        : "dry-run: nothing will change");
    line(head + "  " + mode + (run.id ? s_.dim("  run #" + std::to_string(run.id)) : ""));
    if (!run.params.empty()) {
      std::string ps;
      for (auto it = run.params.begin(); it != run.params.end(); ++it)
        ps += (ps.empty() ? "" : "  ") + it.key() + "=" + brief(*it, 80);
      line(s_.dim("  params: " + ps));
    }
  }

  void step_begin(int idx, int total, const std::string& name, int attempt) override {
    line("");
    line(s_.bold("step " + std::to_string(idx) + "/" + std::to_string(total)) + "  " + name +
         (attempt > 1 ? s_.yellow("  (attempt " + std::to_string(attempt) + ")") : ""));
  }

  void step_end(int idx, const std::string& name, const std::string& outcome,
                const std::string& error, Millis d) override {
    clear_progress();
    if (outcome == "skipped") {
      line(s_.dim("step " + std::to_string(idx) + "/" + std::to_string(total_steps_) + "  " + name + "  (skipped)"));
    } else if (outcome == "live-only") {
      line("  " + s_.yellow("step " + std::to_string(idx) + " checked live only: ") + error);
    } else if (outcome != "succeeded") {
      line("  " + s_.red("step " + std::to_string(idx) + " " + outcome + ": ") + error);
    }
  }

  void effect_begin(const EffectEvent&) override {}

  void effect_end(const EffectEvent& e) override {
    clear_progress();
    ++effects_;
    std::string mark;
    if (e.status == "ok") mark = s_.green("✓");
    else if (e.status == "failed" && e.handled) mark = s_.yellow("!");
    else if (e.status == "failed") mark = s_.red("✗");
    else if (e.status == "predicted") mark = s_.cyan("≈");
    else mark = s_.cyan("~");
    if (e.kind == Kind::Change && e.status == "ok") ++changes_;
    if (e.status == "planned" && e.kind == Kind::Change) ++planned_changes_;
    std::string dur = e.status == "planned"     ? s_.dim("(plan)")
                      : e.status == "predicted" ? s_.dim("(predicted)")
                                                : s_.dim(format_duration(e.duration));
    line("  " + mark + " " + s_.dim(e.name) + "  " + e.describe + "  " + dur);
    std::string pv = preview_text(e.preview);
    if (!pv.empty())
      for (const auto& l : split(pv, '\n')) line("      " + s_.cyan(l));
    if (e.status == "failed" && e.handled) line("      " + s_.yellow(e.error) + s_.dim("  (check = false: the runbook handles it)"));
    else if (e.status == "failed") line("      " + s_.red(e.error));
    else if (e.status == "predicted") line("      " + s_.dim("→ " + brief(e.result)));
    else if (o_.verbose && !e.result.is_null()) line("      " + s_.dim("→ " + brief(e.result)));
  }

  void progress(const std::string& text) override {
    if (!o_.tty) return;
    std::fprintf(o_.out, "\r\033[K    %s %s", s_.dim("…").c_str(), truncate(text, 150).c_str());
    std::fflush(o_.out);
    progress_shown_ = true;
  }

  void log(const std::string& level, const std::string& message) override {
    clear_progress();
    std::string prefix = level == "warn" ? s_.yellow("  ! ") : level == "error" ? s_.red("  ! ") : s_.dim("  · ");
    for (const auto& l : split(message, '\n')) line(prefix + l);
  }

  void run_end(const RunRecord& run) override {
    clear_progress();
    line("");
    std::string secs = format_duration(Millis(run.ended_ms - run.started_ms));
    std::string id = run.id ? "  run #" + std::to_string(run.id) : "";
    if (run.outcome == "succeeded") {
      if (mode_ == "dry-run")
        line(s_.green("✓ plan complete") + ": " + std::to_string(total_steps_) + " steps, " +
             std::to_string(planned_changes_) + " changes planned, nothing was changed" + s_.dim(id));
      else
        line(s_.green("✓ succeeded") + " in " + secs + ": " + std::to_string(total_steps_) + " steps, " +
             std::to_string(effects_) + " effects (" + std::to_string(changes_) + " changes)" + s_.dim(id));
    } else {
      line(s_.red("✗ " + run.outcome) + " after " + secs + ": " + run.error +
           s_.dim("  (exit " + std::to_string(run.exit_code) + ")"));
      if (run.id) line(s_.dim("  details: runbook show " + std::to_string(run.id)));
    }
    checked_live_only(run);
  }

  // What a rehearsal could not check: the operator sees it before trusting the plan.
  void checked_live_only(const RunRecord& run) {
    auto it = run.extra.find("checked_live_only");
    if (it == run.extra.end() || !it->is_array() || it->empty()) return;
    line(s_.yellow("  checked live only") + " (the rehearsal could not know these; the live run checks them):");
    for (const auto& c : *it) {
      std::string where = "step " + std::to_string(c.value("step", 0));
      if (c.value("what", "") == "step-used")
        line("    " + where + " '" + c.value("step_name", "") + "': went through on values it could not know" +
             s_.dim("  (" + c.value("why", "") + ")"));
      else if (c.value("what", "") == "step")
        line("    " + where + " '" + c.value("step_name", "") + "': stopped at " + c.value("error", "") +
             s_.dim("  (" + c.value("why", "") + ")"));
      else
        line("    " + where + " #" + std::to_string(c.value("seq", 0)) + " " + c.value("name", "") + "  " +
             c.value("describe", "") + s_.dim("  (its " + c.value("what", "result") + ": " + c.value("why", "") + ")"));
    }
  }

 private:
  void line(const std::string& s) {
    std::fprintf(o_.out, "%s\n", s.c_str());
    std::fflush(o_.out);
  }
  void clear_progress() {
    if (!progress_shown_) return;
    std::fprintf(o_.out, "\r\033[K");
    progress_shown_ = false;
  }
  ReporterOptions o_;
  Style s_;
  int total_steps_ = 0;
  int effects_ = 0, changes_ = 0, planned_changes_ = 0;
  bool progress_shown_ = false;
  std::string mode_;
};

class JsonReporter : public Reporter {
 public:
  explicit JsonReporter(ReporterOptions o) : o_(o) {}
  void run_begin(const RunRecord& run, const std::vector<std::string>& steps) override {
    emit({{"event", "run_begin"}, {"run", run.id}, {"runbook", run.runbook}, {"version", run.version},
          {"mode", run.mode}, {"offline", run.offline}, {"sha256", run.sha256}, {"params", run.params},
          {"steps", steps}});
  }
  void step_begin(int idx, int total, const std::string& name, int attempt) override {
    emit({{"event", "step_begin"}, {"step", idx}, {"total", total}, {"name", name}, {"attempt", attempt}});
  }
  void step_end(int idx, const std::string& name, const std::string& outcome, const std::string& error,
                Millis d) override {
    json e{{"event", "step_end"}, {"step", idx}, {"name", name}, {"outcome", outcome},
           {"duration_ms", d.count()}};
    if (!error.empty()) e["error"] = error;
    emit(e);
  }
  void effect_end(const EffectEvent& e) override {
    json j{{"event", "effect"}, {"seq", e.seq}, {"name", e.name}, {"kind", kind_name(e.kind)},
           {"status", e.status}, {"describe", e.describe}, {"duration_ms", e.duration.count()},
           {"site", e.site}, {"result", e.result}};
    if (!e.preview.is_null()) j["preview"] = e.preview;
    if (!e.error.empty()) j["error"] = e.error;
    if (e.handled) j["handled"] = true;
    emit(j);
  }
  void log(const std::string& level, const std::string& message) override {
    emit({{"event", "log"}, {"level", level}, {"message", message}});
  }
  void run_end(const RunRecord& run) override {
    json e{{"event", "run_end"}, {"run", run.id}, {"outcome", run.outcome}, {"exit_code", run.exit_code},
           {"kind", run.extra.is_object() && run.extra.contains("kind") ? run.extra["kind"]
                                                                         : json(exit_kind(run.exit_code))},
           {"duration_ms", run.ended_ms - run.started_ms}};
    if (run.extra.is_object() && run.extra.contains("cleanup")) e["cleanup"] = run.extra["cleanup"];
    if (!run.error.empty()) e["error"] = run.error;
    if (run.extra.contains("checked_live_only")) e["checked_live_only"] = run.extra["checked_live_only"];
    emit(e);
  }

 private:
  void emit(const json& j) {
    print_event(j, o_.out);
  }
  ReporterOptions o_;
};

}  // namespace

std::unique_ptr<Reporter> make_reporter(const ReporterOptions& o) {
  if (o.json) return std::make_unique<JsonReporter>(o);
  return std::make_unique<HumanReporter>(o);
}

}  // namespace rb::cli
