#include "dispatch/dispatcher.h"

#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/interrupt.h"

namespace rb {

const char* mode_name(Mode m, bool offline) {
  switch (m) {
    case Mode::Live: return "live";
    case Mode::DryRun: return offline ? "dry-run (offline)" : "dry-run";
    case Mode::Replay: return "replay";
  }
  return "?";
}

Millis EffectContext::bound(Millis timeout) const {
  auto left = std::chrono::duration_cast<Millis>(deadline() - std::chrono::steady_clock::now());
  if (deadline() == SteadyTime::max()) return timeout;
  return std::max(Millis(0), std::min(timeout, left));
}

Dispatcher::Dispatcher(Journal* journal, Reporter* reporter, RunOptions opts)
    : journal_(journal), reporter_(reporter), opts_(std::move(opts)) {}

void Dispatcher::set_step(int idx, int attempt, SteadyTime deadline) {
  step_idx_ = idx;
  attempt_ = attempt;
  deadline_ = deadline;
}

void Dispatcher::answer_from(std::vector<EffectRecord> recorded, int64_t answer_through) {
  recorded_ = std::move(recorded);
  answer_through_ = answer_through;
}

std::string Dispatcher::artifact_dir() {
  if (artifact_dir_.empty()) {
    std::string root = opts_.artifacts_root.empty() ? "." : opts_.artifacts_root;
    artifact_dir_ = root + "/" + std::to_string(run_id_);
    std::error_code ec;
    std::filesystem::create_directories(artifact_dir_, ec);
    if (ec) throw EffectError("cannot create artifact directory " + artifact_dir_ + ": " +
                              ec.message());
  }
  return artifact_dir_;
}

void Dispatcher::check_interrupt() const {
  if (interrupt_requested()) throw Interrupted("interrupted");
  if (deadline_ != SteadyTime::max() && std::chrono::steady_clock::now() > deadline_)
    throw DeadlineExceeded("the step's deadline passed");
}

void Dispatcher::progress(const std::string& text) {
  if (reporter_) reporter_->progress(redactor_.text(text));
}

void Dispatcher::note(const std::string& text) { log("info", text); }

json Dispatcher::run_info() const {
  return json{{"id", run_id_},
              {"mode", opts_.mode == Mode::DryRun ? "dry-run" : mode_name(opts_.mode)},
              {"dry_run", opts_.mode == Mode::DryRun},
              {"offline", opts_.offline},
              {"replay", opts_.mode == Mode::Replay}};
}

bool Dispatcher::pause(Millis d) {
  if (opts_.mode != Mode::Live) return !interrupt_requested();
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (interrupt_requested()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !interrupt_requested();
}

json& Dispatcher::state(const std::string& module) {
  auto& s = state_[module];
  if (s.is_null()) s = json::object();
  return s;
}

void Dispatcher::log(const std::string& level, const std::string& message) {
  std::string msg = redactor_.text(message);
  if (journal_ && run_id_ && opts_.mode != Mode::Replay)
    journal_->log(LogRecord{run_id_, seq_, step_idx_, level, msg, now_epoch_ms()});
  if (reporter_) reporter_->log(level, msg);
}

json Dispatcher::redact_args(const Effect& e, const Args& a) const {
  json shown = a.raw();
  for (const auto& spec : e.args)
    if (spec.secret && shown.contains(spec.name) && !shown[spec.name].is_null())
      shown[spec.name] = "***";
  return redactor_.value(shown);
}

namespace {

std::string error_text(const Effect& e, const std::string& what) { return e.name + ": " + what; }

json with_failure(json result, const std::string& error) {
  if (!result.is_object()) result = json{{"value", result}};
  result["ok"] = false;
  result["error"] = error;
  return result;
}

}  // namespace

CallResult Dispatcher::answer_recorded(const Effect& e, const Args& args, const json& shown_args,
                                       const std::string& site, EffectEvent& ev) {
  const EffectRecord* rec = nullptr;
  for (const auto& r : recorded_)
    if (r.seq == seq_) rec = &r;
  if (!rec)
    throw Divergence("effect #" + std::to_string(seq_) + " " + e.name + " at " + site +
                     " is not in the journal: the original run made only " +
                     std::to_string(recorded_.size()) + " effects");
  if (rec->name != e.name || rec->args != shown_args)
    throw Divergence("effect #" + std::to_string(seq_) + " differs from the journal\n  expected: " +
                     rec->name + " " + rec->args.dump() + "  (at " + rec->site + ")\n  actual:   " +
                     e.name + " " + shown_args.dump() + "  (at " + site + ")");
  ev.status = rec->state == "done" ? "ok" : rec->state;
  ev.preview = rec->preview;
  ev.result = rec->result;
  ev.error = rec->error;
  ev.duration = Millis(rec->ended_ms - rec->started_ms);
  if (reporter_) reporter_->effect_end(ev);
  if (rec->state == "failed") {
    if (args.boolean("check", true)) return CallResult{false, rec->result, rec->error};
    return CallResult{true, rec->result, ""};
  }
  return CallResult{true, rec->result, ""};
}

CallResult Dispatcher::call(const Effect& e, json raw_args, const std::string& site) {
  Args args = validate_args(e.name, e.args, std::move(raw_args));
  if (e.secrets_of)
    for (const auto& s : e.secrets_of(args)) add_secret(s);
  Kind kind = e.kind_of(args);
  json shown_args = redact_args(e, args);
  Args shown(e.name, shown_args);
  ++seq_;

  EffectEvent ev;
  ev.seq = seq_;
  ev.name = e.name;
  ev.kind = kind;
  ev.site = site;
  ev.describe = redactor_.text(e.describe ? e.describe(shown) : e.name);
  ev.status = "running";

  bool answered = opts_.mode == Mode::Replay || seq_ <= answer_through_;
  if (reporter_) reporter_->effect_begin(ev);
  if (answered) return answer_recorded(e, args, shown_args, site, ev);

  bool planned = opts_.mode == Mode::DryRun && (kind != Kind::Probe || opts_.offline);
  EffectRecord rec;
  rec.run_id = run_id_;
  rec.seq = seq_;
  rec.step_idx = step_idx_;
  rec.attempt = attempt_;
  rec.name = e.name;
  rec.kind = kind_name(kind);
  rec.args = shown_args;
  rec.describe = ev.describe;
  rec.site = site;
  rec.state = planned ? "planned" : "begun";
  rec.started_ms = now_epoch_ms();
  // Write-ahead: a live change is on disk before it acts.
  if (journal_) journal_->effect_begun(rec, kind == Kind::Change && !planned);

  auto t0 = std::chrono::steady_clock::now();
  CallResult out;
  std::string failure;
  json result;
  try {
    if (planned) {
      json pv = nullptr;
      if (e.preview && !opts_.offline) {
        try {
          pv = e.preview(*this, args);
        } catch (const EffectError& err) {
          pv = json{{"text", std::string("cannot preview: ") + err.what()}, {"error", err.what()}};
        }
      }
      ev.preview = redactor_.value(pv);
      result = e.planned ? e.planned(args, pv) : json::object();
      if (result.is_object()) result["planned"] = true;
    } else {
      result = e.apply(*this, args);
    }
  } catch (const EffectError& err) {
    failure = error_text(e, err.what());
    result = err.result();
  } catch (const ArgError& err) {
    failure = err.what();
  } catch (const Interrupted&) {
    failure = error_text(e, "interrupted");
  } catch (const DeadlineExceeded&) {
    failure = error_text(e, "the step's deadline passed");
  } catch (const std::exception& err) {
    failure = error_text(e, err.what());
  }
  failure = redactor_.text(failure);
  result = redactor_.value(result);

  ev.duration = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
  ev.result = result;
  ev.error = failure;
  ev.status = !failure.empty() ? "failed" : (planned ? "planned" : "ok");
  rec.state = !failure.empty() ? "failed" : (planned ? "planned" : "done");
  rec.result = result;
  rec.preview = ev.preview;
  rec.error = failure;
  rec.ended_ms = now_epoch_ms();
  if (journal_) journal_->effect_ended(rec);
  if (reporter_) reporter_->effect_end(ev);

  // Interruption and deadlines end the step whatever check says; they are re-raised here, after
  // the journal has the record.
  if (interrupt_requested()) throw Interrupted(failure.empty() ? "interrupted" : failure);
  if (deadline_ != SteadyTime::max() && std::chrono::steady_clock::now() > deadline_ &&
      !failure.empty())
    throw DeadlineExceeded(failure);

  if (!failure.empty()) {
    if (e.checkable && !args.boolean("check", true))
      return CallResult{true, with_failure(result, failure), ""};
    return CallResult{false, result, failure};
  }
  // Checkable results always say whether they succeeded, planned ones included.
  if (e.checkable && result.is_object()) result["ok"] = true;
  return CallResult{true, result, ""};
}

}  // namespace rb
