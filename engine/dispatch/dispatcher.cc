#include "dispatch/dispatcher.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/hash.h"
#include "core/interrupt.h"
#include "core/unknown.h"
#include "dispatch/registry.h"

namespace rb {

#ifdef RUNBOOK_TEST_HOOKS
// Compiled in only when the build is configured with the tests, and even then active only in an
// executable that links engine/dispatch/test_hooks.cc (the tests and build/runbook, which they
// run), never in the one `cmake --install` and the package ship (build/dist/runbook).
bool g_test_hooks_linked = false;
#endif

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
    : journal_(journal), reporter_(reporter), opts_(std::move(opts)) {
#ifdef RUNBOOK_TEST_HOOKS  // only in builds configured with the tests, never in the package
  if (const char* c = std::getenv("RUNBOOK_CRASH_AT"); g_test_hooks_linked && c && *c) {
    std::string spec = c;
    auto colon = spec.find(':');
    if (colon != std::string::npos) {
      crash_when_ = spec.substr(0, colon);
      crash_seq_ = std::atoll(spec.c_str() + colon + 1);
    }
  }
#endif
}

void Dispatcher::set_step(int idx, int attempt, SteadyTime deadline, const std::string& name) {
  if (idx != step_idx_ || attempt != attempt_) unknown_sites_.clear();
  step_idx_ = idx;
  attempt_ = attempt;
  deadline_ = deadline;
  if (!name.empty()) step_name_ = name;
}

void Dispatcher::answer_from(std::vector<EffectRecord> recorded, int64_t answer_through) {
  recorded_ = std::move(recorded);
  std::sort(recorded_.begin(), recorded_.end(),
            [](const EffectRecord& a, const EffectRecord& b) { return a.seq < b.seq; });
  answer_through_ = answer_through;
}

void Dispatcher::recorded_run(std::vector<StepRecord> steps, std::string outcome,
                              std::pair<int, int> live_attempt) {
  recorded_steps_.clear();
  for (auto& s : steps) recorded_steps_[{s.idx, s.attempt}] = std::move(s);
  recorded_outcome_ = std::move(outcome);
  live_attempt_ = live_attempt;
}

ResumePoint resume_point(const std::vector<StepRecord>& steps,
                         const std::vector<EffectRecord>& effects) {
  ResumePoint p;
  for (const auto& e : effects)
    if (e.state == "begun") {
      p.in_doubt_seq = e.seq;
      p.answer_through = e.seq - 1;
      p.step = e.step_idx;
      p.attempt = e.attempt;
      return p;
    }
  // The step attempt that went wrong: the first one not succeeded that was not retried.
  std::map<int, int> last_attempt;
  for (const auto& s : steps) last_attempt[s.idx] = std::max(last_attempt[s.idx], s.attempt);
  for (const auto& s : steps)
    if (s.outcome != "succeeded" && s.attempt == last_attempt[s.idx]) {
      p.step = s.idx;
      p.attempt = s.attempt;
      break;
    }
  auto before = [&](const EffectRecord& e) {
    return p.step == 0 || std::make_pair(e.step_idx, e.attempt) < std::make_pair(p.step, p.attempt);
  };
  for (const auto& e : effects) {
    bool in_it = e.step_idx == p.step && e.attempt == p.attempt;
    if (before(e) || (in_it && e.kind != "probe" && e.state == "done"))
      p.answer_through = std::max(p.answer_through, e.seq);
  }
  return p;
}

std::string Dispatcher::artifact_path() const {
  if (!artifact_dir_.empty()) return artifact_dir_;
  return (opts_.artifacts_root.empty() ? "." : opts_.artifacts_root) + "/" + std::to_string(run_id_);
}

std::string Dispatcher::artifact_dir() {
  if (artifact_dir_.empty()) {
    std::string root = opts_.artifacts_root.empty() ? "." : opts_.artifacts_root;
    artifact_dir_ = root + "/" + std::to_string(run_id_);
    // Private (0700) from the first byte: made under a temporary name, restricted, then renamed
    // into place, so the directory is never visible with the umask's wider mode.
    namespace sfs = std::filesystem;
    std::error_code ec;
    // The root, when this run makes it, is private too (whatever the umask; an existing one is
    // left as its owner set it: each run's own directory below is 0700 regardless).
    if (sfs::create_directories(sfs::path(artifact_dir_).parent_path(), ec) && !ec)
      sfs::permissions(sfs::path(artifact_dir_).parent_path(), sfs::perms::owner_all,
                       sfs::perm_options::replace, ec);
    ec.clear();
    if (!sfs::exists(artifact_dir_, ec)) {
      std::string tmp = artifact_dir_ + ".tmp" + std::to_string(run_id_) + "-" +
                        std::to_string(reinterpret_cast<uintptr_t>(this) % 100000);
      ec.clear();
      if (sfs::create_directory(tmp, ec)) {
        sfs::permissions(tmp, sfs::perms::owner_all, sfs::perm_options::replace, ec);
        if (!ec) sfs::rename(tmp, artifact_dir_, ec);
        if (ec) sfs::remove(tmp, ec);
      }
    }
    ec.clear();
    sfs::create_directories(artifact_dir_, ec);
    if (ec) throw EffectError("cannot create artifact directory " + artifact_dir_ + ": " +
                              ec.message());
    sfs::permissions(artifact_dir_, sfs::perms::owner_all, sfs::perm_options::replace, ec);
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
  std::string mode = !opts_.seen_mode.empty()         ? opts_.seen_mode
                     : opts_.mode == Mode::DryRun ? "dry-run"
                                                  : mode_name(opts_.mode);
  return json{{"id", opts_.seen_id ? opts_.seen_id : run_id_},
              {"mode", mode},
              {"dry_run", mode == "dry-run"},
              {"offline", opts_.offline},
              {"replay", opts_.mode == Mode::Replay},
              {"test", opts_.fakes != nullptr}};
}

bool Dispatcher::pause(Millis d) {
  // A replay, and the answered prefix of a resume, wait for nothing.
  if (opts_.mode != Mode::Live || opts_.fakes || seq_ < answer_through_)
    return !interrupt_requested();
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

// RehearsalLoop: this many unknowns from one call site in one step attempt.
constexpr int kUnknownRepeats = 20;

std::string error_text(const Effect& e, const std::string& what) { return e.name + ": " + what; }

// The journal keeps a value over its cap as a head and "… [truncated: N bytes, sha256 H]": the
// same as a live value of that size and digest.
bool same_truncated(const std::string& recorded, const std::string& live) {
  const std::string mark = "… [truncated: ";
  auto at = recorded.rfind(mark);
  if (at == std::string::npos || live.size() <= Journal::kBlobMin) return false;
  std::string tail = recorded.substr(at + mark.size());
  std::string expect = std::to_string(live.size()) + " bytes, sha256 ";
  if (tail.compare(0, expect.size(), expect) != 0) return false;
  return tail == expect + sha256_hex(live) + "]";
}

// Equal as values: objects compare by key, whatever their order (a Lua table's keys come out in
// an order that differs from one process to the next).
bool same_value(const json& a, const json& b) {
  if (a.is_string() && b.is_string() && a != b)
    return same_truncated(a.get_ref<const std::string&>(), b.get_ref<const std::string&>());
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto f = b.find(it.key());
      if (f == b.end() || !same_value(*it, *f)) return false;
    }
    return true;
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same_value(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

// "rb.lua:12:" (as Lua gives it) -> "rb.lua:12", for messages.
std::string at(std::string site) {
  if (!site.empty() && site.back() == ':') site.pop_back();
  return site;
}

json with_failure(json result, const std::string& error) {
  if (!result.is_object()) result = json{{"value", result}};
  result["ok"] = false;
  result["error"] = error;
  return result;
}

// The call asked for a failure to come back as its result (check = false) instead of raising.
bool takes_failures(const Effect& e, const Args& args) {
  return e.checkable && !args.boolean("check", true);
}

}  // namespace

const EffectRecord* Dispatcher::recorded_at(int64_t seq) const {
  auto it = std::lower_bound(recorded_.begin(), recorded_.end(), seq,
                             [](const EffectRecord& r, int64_t s) { return r.seq < s; });
  return it != recorded_.end() && it->seq == seq ? &*it : nullptr;
}

void Dispatcher::check_same(const EffectRecord* rec, const Effect& e, const json& shown_args,
                            const std::string& site) {
  if (rec && rec->name == e.name && same_value(rec->args, shown_args)) return;
  json d{{"step", step_idx_}, {"step_name", step_name_}, {"attempt", attempt_}, {"effect", seq_},
         {"actual", {{"name", e.name}, {"args", shown_args}, {"site", site}}}};
  std::string msg;
  if (!rec) {
    d["reason"] = "extra";
    d["expected"] = nullptr;
    msg = "effect #" + std::to_string(seq_) + " " + e.name + " " + shown_args.dump() + " at " +
          at(site) + " is not in the journal: the original run made only " +
          std::to_string(recorded_.size()) + " effects";
  } else {
    d["reason"] = "differs";
    d["expected"] = {{"name", rec->name}, {"args", rec->args}, {"site", rec->site},
                     {"step", rec->step_idx}};
    msg = "effect #" + std::to_string(seq_) + " differs from the journal\n  expected: " +
          rec->name + " " + rec->args.dump() + "  (at " + at(rec->site) + ")\n  actual:   " +
          e.name + " " + shown_args.dump() + "  (at " + at(site) + ")";
  }
  if (divergence_.is_null()) divergence_ = d;
  throw Divergence(msg);
}

// The original run's step attempt ended right after this effect by an interrupt or its deadline:
// end it the same way, so the runbook goes down the same path (a pcall does not see it).
void Dispatcher::reproduce_ending(const EffectRecord& rec) const {
  std::pair<int, int> attempt{rec.step_idx, rec.attempt};
  if (attempt == live_attempt_) return;
  auto it = recorded_steps_.find(attempt);
  if (it == recorded_steps_.end()) return;
  // Effects of one attempt have consecutive numbers: it ended here unless the next is its own.
  const EffectRecord* next = recorded_at(rec.seq + 1);
  if (next && next->step_idx == rec.step_idx && next->attempt == rec.attempt) return;
  const StepRecord& s = it->second;
  if (s.outcome == "interrupted") throw Interrupted("interrupted");
  if (s.error.find("exceeded its timeout") != std::string::npos)
    throw DeadlineExceeded(rec.error.empty() ? s.error : rec.error);
}

CallResult Dispatcher::finish_answer(const Effect& e, const Args& args, EffectRecord rec,
                                     EffectEvent& ev) {
  ++answered_;
  ev.status = rec.state == "done" ? "ok" : rec.state;
  ev.handled = rec.state == "failed" && takes_failures(e, args);
  ev.preview = rec.preview;
  ev.result = rec.result;
  ev.error = rec.error;
  ev.duration = Millis(rec.ended_ms > rec.started_ms ? rec.ended_ms - rec.started_ms : 0);
  if (journal_ && run_id_ && opts_.mode != Mode::Replay) {
    // The resumed run's journal is whole: its answered prefix is copied, marked as done by the
    // run that did it.
    EffectRecord copy = rec;
    copy.run_id = run_id_;
    copy.step_idx = step_idx_;
    copy.attempt = attempt_;
    if (copy.origin.empty() || copy.origin == "journal") {
      copy.origin_run = rec.origin_run ? rec.origin_run : rec.run_id;
      copy.origin = "journal";
    }
    journal_->effect_copied(copy);
  }
  if (reporter_) reporter_->effect_end(ev);
  // The same value the live call returned then (see the end of perform()).
  if (rec.state == "failed") {
    reproduce_ending(rec);
    if (takes_failures(e, args))
      return CallResult{true, with_failure(rec.result, rec.error), ""};
    return CallResult{false, rec.result, rec.error};
  }
  reproduce_ending(rec);
  json result = rec.result;
  if (e.checkable && result.is_object()) result["ok"] = true;
  return CallResult{true, result, ""};
}

CallResult Dispatcher::answer_recorded(const Effect& e, const Args& args, const json& shown_args,
                                       const std::string& site, EffectEvent& ev) {
  const EffectRecord* rec = recorded_at(seq_);
  bool incomplete = recorded_outcome_ != "succeeded" && recorded_outcome_ != "failed";
  if (!rec && opts_.mode == Mode::Replay && incomplete && seq_ > recorded_count()) {
    // The journal ends here: the original run was interrupted or its process died.
    throw Interrupted("the journal ends here (the original run " +
                      (recorded_outcome_.empty() ? std::string("stopped") : recorded_outcome_) +
                      " after effect #" + std::to_string(seq_ - 1) + ")");
  }
  check_same(rec, e, shown_args, site);
  if (rec->state == "begun" || rec->state.empty())
    throw Interrupted("the journal ends here: effect #" + std::to_string(seq_) + " " + e.name +
                      " began and never finished (the original run's process died)");
  return finish_answer(e, args, *rec, ev);
}

namespace {

// An --assume-done result: the planned shape keeps what it takes from the arguments (paths,
// names, a command's verb: non-empty strings, other than an all-zero digest) and every field it
// would make up — counts, affected rows, exit codes, sizes, flags, empty output, empty lists —
// becomes unknown_value(why). Bounded by the JSON nesting limit.
json assumed_unknowns(const json& v, const std::string& why, int depth = 0) {
  if (v.is_object()) {
    if (depth > 8) return unknown_value(why);
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it)
      append_member(out, it.key(), assumed_unknowns(it.value(), why, depth + 1));
    return out;
  }
  if (v.is_string()) {
    const auto& t = v.get_ref<const std::string&>();
    bool zeros = !t.empty() && t.find_first_not_of('0') == std::string::npos;
    return t.empty() || zeros ? unknown_value(why) : v;
  }
  if (v.is_array() && !v.empty()) return v;
  return unknown_value(why);
}

}  // namespace

CallResult Dispatcher::settle_in_doubt(const Effect& e, const Args& args, Kind kind,
                                       const json& shown_args, const std::string& site,
                                       EffectEvent& ev, const EffectRecord& rec) {
  int64_t performer = rec.origin_run ? rec.origin_run : rec.run_id;
  std::string what = "effect #" + std::to_string(seq_) + " " + e.name + " (" + ev.describe +
                     ") at " + at(site) + ", begun in run #" + std::to_string(performer) + " at " +
                     iso_utc(rec.started_ms);
  // Probes, waits and prompts change nothing: doing them again is safe.
  if (kind != Kind::Change) {
    log("info", what + ", never finished; it changes nothing, so it is done again");
    return perform(e, args, kind, shown_args, site, ev, "redone", performer);
  }
  auto answer_done = [&](const std::string& origin, json result) {
    EffectRecord done = rec;
    done.state = "done";
    done.result = redactor_.value(result);
    done.error.clear();
    done.origin = origin;
    done.origin_run = performer;
    // When it was settled (the log line keeps when it began).
    done.started_ms = done.ended_ms = now_epoch_ms();
    return finish_answer(e, args, done, ev);
  };
  auto assumed_result = [&](const char* flag) {
    json r = e.planned ? e.planned(args, nullptr) : json::object();
    if (!r.is_object()) r = json{{"value", r}};
    r.erase("planned");
    r[flag] = true;
    return r;
  };
  if (opts_.in_doubt == InDoubt::AssumeDone) {
    log("warn", what + ", never finished; --assume-done: taken as done, not repeated");
    // Nothing recorded what it returned: what the planned shape would invent is unknown.
    json r = assumed_unknowns(assumed_result("assumed"),
                              e.name + " assumed done with --assume-done");
    r["assumed"] = true;
    return answer_done("assumed", r);
  }
  if (opts_.in_doubt == InDoubt::Redo) {
    log("warn", what + ", never finished; --redo: performed again");
    return perform(e, args, kind, shown_args, site, ev, "redone", performer);
  }
  json found = nullptr;
  std::string why_not;
  if (e.verify && opts_.fakes) {
    // Under test nothing acted, and a simulated crash comes before its effect acts.
    found = false;
  } else if (e.verify) {
    doubt_began_ms_ = rec.started_ms;
    try {
      found = e.verify(*this, args);
    } catch (const std::exception& err) {
      why_not = err.what();
      found = nullptr;
    }
    doubt_began_ms_ = 0;
  }
  bool took_place = (found.is_boolean() && found.get<bool>()) ||
                    (found.is_object() && found.value("done", false));
  if (took_place) {
    json result = found.is_object() && found.contains("result") ? found["result"]
                                                                 : assumed_result("verified");
    if (result.is_object()) result["verified"] = true;
    log("info", what + ", never finished; checked: it took place, so it is not repeated");
    return answer_done("verified", result);
  }
  if ((found.is_boolean() && !found.get<bool>()) || (found.is_object() && found.contains("done"))) {
    log("info", what + ", never finished; checked: it did not take place, so it is performed now");
    return perform(e, args, kind, shown_args, site, ev, "redone", performer);
  }
  // Nothing can tell: stop, leave it in doubt in this run's journal too, and ask.
  std::string reason = !e.verify ? e.name + " cannot tell from the world whether it took place"
                       : why_not.empty()
                           ? e.name + "'s check could not tell whether it took place"
                           : e.name + "'s check failed: " + why_not;
  in_doubt_stop_ = {{"effect", seq_}, {"name", e.name}, {"args", shown_args},
                    {"describe", ev.describe}, {"site", site}, {"run", performer},
                    {"began", iso_utc(rec.started_ms)}, {"reason", reason},
                    {"choices", {"--assume-done", "--redo"}}};
  if (journal_ && run_id_) {
    EffectRecord copy = rec;
    copy.run_id = run_id_;
    copy.state = "begun";
    copy.origin = "in-doubt";
    copy.origin_run = performer;
    journal_->effect_copied(copy);
    journal_->flush();
  }
  throw InDoubtError(what + " never finished, and " + reason + ".\n  args: " +
                     shown_args.dump() +
                     "\n  Look at the world, then resume again with --assume-done (it took "
                     "place: go on after it) or --redo (perform it again).");
}

void Dispatcher::crash_point(const char* when) const {
  if (crash_seq_ == seq_ && crash_when_ == when) ::raise(SIGKILL);
}

CallResult Dispatcher::call(const Effect& e, json raw_args, const std::string& site) {
  if (crashed_) throw SimulatedCrash("the run crashed (simulated)");
  Args args = validate_args(e.name, e.args, std::move(raw_args));
  if (e.secrets_of)
    for (const auto& s : e.secrets_of(args)) add_secret(s);
  Kind kind = e.kind_of(args);
  // Nothing acts while the journal cannot record it: rows it could not write are tried again
  // here, and if it still cannot, the step ends at this boundary.
  if (journal_ && run_id_ && opts_.mode != Mode::Replay) {
    try {
      journal_->check();
    } catch (const JournalError& err) {
      throw JournalStop(err.what());
    }
  }
  json shown_args = redact_args(e, args);
  Args shown(e.name, shown_args);
  ++seq_;

  EffectEvent ev;
  ev.seq = seq_;
  ev.name = e.name;
  ev.kind = kind;
  ev.site = site;
  std::string described = e.name;
  if (e.describe) {
    try {
      described = e.describe(shown);
    } catch (const std::exception&) {
      // Arguments it cannot read (a rehearsal's unknown): the call as given.
      described = e.name + " " + shown_args.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  ev.describe = redactor_.text(described);
  ev.status = "running";

  bool answered = opts_.mode == Mode::Replay || seq_ <= answer_through_;
  if (reporter_) reporter_->effect_begin(ev);
  if (answered) {
    if (e.state_only) e.apply(*this, args);  // rebuilds run state; reaches nothing outside
    return answer_recorded(e, args, shown_args, site, ev);
  }
  if (seq_ == answer_through_ + 1 && opts_.mode == Mode::Live) {
    const EffectRecord* rec = recorded_at(seq_);
    if (rec && rec->state == "begun") {
      check_same(rec, e, shown_args, site);
      return settle_in_doubt(e, args, kind, shown_args, site, ev, *rec);
    }
  }
  return perform(e, args, kind, shown_args, site, ev, "", 0);
}

CallResult Dispatcher::perform(const Effect& e, const Args& args, Kind kind,
                               const json& shown_args, const std::string& site, EffectEvent& ev,
                               const std::string& origin, int64_t origin_run) {
  bool planned = opts_.mode == Mode::DryRun && (kind != Kind::Probe || opts_.offline) && !e.state_only;
  // Unknowns exist only in a rehearsal (a probe it could not predict) and in a resume's results
  // taken with --assume-done. Live, nothing acts on a value nobody knows.
  bool unknown_args = unknowns_made() > 0 && contains_unknown(args.raw());
  std::string refusal;
  if (unknown_args && opts_.mode != Mode::DryRun) {
    std::vector<std::string> why;
    unknown_reasons(args.raw(), &why, 3);
    refusal = "its arguments hold a value that is not known (" +
              (why.empty() ? std::string("?") : why.front()) +
              "), so it does not act; look at the world, then resume with --redo or change the "
              "runbook";
  }
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
  rec.origin = origin;
  rec.origin_run = origin_run;
  // Write-ahead: a live change is on disk before it acts.
  if (journal_) {
    try {
      journal_->effect_begun(rec, kind == Kind::Change && !planned);
    } catch (const JournalError& err) {
      // Its begun row is not on disk, so the change does not act.
      ev.status = "failed";
      ev.error = err.what();
      if (reporter_) reporter_->effect_end(ev);
      throw JournalStop(err.what());
    }
  }
  if (!planned) crash_point("before");
  if (opts_.fakes && opts_.fakes->crash_before(seq_)) {
    crashed_ = true;
    if (journal_) journal_->set_frozen(true);
    throw SimulatedCrash("the run crashed (simulated) before effect #" + std::to_string(seq_) +
                         " " + e.name);
  }
  bool fake_timeout = false;

  auto t0 = std::chrono::steady_clock::now();
  CallResult out;
  std::string failure;
  bool bad_argument = false;  // an ArgError from the effect itself (a runbook bug)
  json result;
  bool predicted = false;
  try {
    if (!refusal.empty()) throw EffectError(refusal);
    if (planned && kind == Kind::Probe && e.predicted) {
      // An offline dry-run performs no probe, but one of what the plan changes is answered.
      result = e.predicted(*this, args);
      predicted = !result.is_null();
      if (is_predicted_nil(result)) result = nullptr;
      if (!predicted) result = e.planned ? e.planned(args, nullptr) : json::object();
      if (!predicted && result.is_object()) result["planned"] = true;
    } else if (planned && unknown_args) {
      // Its arguments are known only live (they hold what a probe could not predict): neither
      // previewed nor predicted; it is checked live only.
      try {
        result = e.planned ? e.planned(args, nullptr) : json::object();
      } catch (const std::exception&) {
        result = json::object();
      }
      if (result.is_object()) result["planned"] = true;
    } else if (planned) {
      json pv = nullptr;
      if (e.preview && !opts_.offline) {
        try {
          pv = e.preview(*this, args);
        } catch (const WouldFail&) {
          throw;
        } catch (const EffectError& err) {
          pv = json{{"text", std::string("cannot preview: ") + err.what()}, {"error", err.what()}};
        }
      }
      ev.preview = redactor_.value(pv);
      result = e.planned ? e.planned(args, pv) : json::object();
      if (result.is_object()) result["planned"] = true;
      if (e.predict) e.predict(*this, args, pv, result);
    } else if (opts_.mode == Mode::DryRun && e.predicted) {
      result = e.predicted(*this, args);
      predicted = !result.is_null();
      if (is_predicted_nil(result)) result = nullptr;
      if (!predicted) result = e.apply(*this, args);
    } else if (opts_.fakes && !e.state_only) {
      result = answer_under_test(e, args, &fake_timeout);
    } else {
      result = e.apply(*this, args);
    }
  } catch (const WouldFail& err) {
    failure = error_text(e, std::string("the live run would fail here: ") + err.what());
    result = err.result();
  } catch (const EffectError& err) {
    failure = error_text(e, err.what());
    result = err.result();
  } catch (const ArgError& err) {
    failure = err.what();
    bad_argument = true;
  } catch (const Interrupted&) {
    failure = error_text(e, "interrupted");
  } catch (const DeadlineExceeded&) {
    failure = error_text(e, "the step's deadline passed");
  } catch (const std::exception& err) {
    failure = error_text(e, err.what());
  }
  if (!planned) crash_point("after");
#ifdef RUNBOOK_TEST_HOOKS  // only in builds configured with the tests, never in the package
  // Every live result carries only the fields its effect declares (Effect::results), so `runbook
  // api` and `runbook lint` cannot drift from what runs: the whole suite checks it. Successful
  // results only: a failure's result is diagnostics (the tool's output, its exit code), and a
  // `runbook test` fake answers whatever its author wrote.
  // On in every test build (the whole suite passes with it); RUNBOOK_CHECK_RESULTS=0 turns it
  // off, for a test of an effect whose declarations are being written.
  static const bool check_results = [] {
    if (!g_test_hooks_linked) return false;
    const char* v = std::getenv("RUNBOOK_CHECK_RESULTS");
    return !(v && std::string(v) == "0");
  }();
  if (check_results && !planned && !predicted && failure.empty() && !opts_.fakes && !is_unknown(result)) {
    std::string field = undeclared_result_field(e, result);
    if (!field.empty())
      failure = error_text(e, "result field '" + field +
                                  "' is not declared in the registry (Effect::results; a test "
                                  "build checks every live result)");
  }
#endif
  failure = redactor_.text(failure);
  // The journal and the output get the redacted result; the runbook gets the real one (as it gets
  // its secret parameters), and whatever it logs or raises is redacted on the way out.
  json raw = result;
  result = redactor_.value(result);

  ev.duration = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
  ev.result = result;
  ev.error = failure;
  ev.status = !failure.empty() ? "failed" : predicted ? "predicted" : (planned ? "planned" : "ok");
  ev.handled = !failure.empty() && takes_failures(e, args);
  rec.state = !failure.empty() ? "failed" : predicted ? "predicted" : (planned ? "planned" : "done");
  std::string looping;
  if (failure.empty() && opts_.mode == Mode::DryRun && unknowns_made() > 0 &&
      (unknown_args || contains_unknown(result))) {
    std::vector<std::string> why;
    unknown_reasons(unknown_args ? args.raw() : result, &why, 3);
    std::string reason = redactor_.text(why.empty() ? "" : why.front());
    // A loop waiting on what the rehearsal cannot know would spin until the step's deadline.
    if (++unknown_sites_[site] == kUnknownRepeats)
      looping = e.name + " at " + at(site) + " gave " + std::to_string(kUnknownRepeats) +
                " values the rehearsal cannot know in this step (" + reason +
                "): the rehearsal stops the step here";
    else if (unknown_sites_[site] < kUnknownRepeats)
      add_checked_live_only({{"seq", seq_}, {"step", step_idx_}, {"step_name", step_name_},
                             {"name", e.name}, {"describe", ev.describe}, {"why", reason},
                             {"what", unknown_args ? "arguments" : "result"}});
  }
  rec.result = result;
  rec.preview = ev.preview;
  rec.error = failure;
  rec.ended_ms = now_epoch_ms();
  if (journal_) journal_->effect_ended(rec);
  if (!planned) crash_point("done");
  if (reporter_) reporter_->effect_end(ev);

  // Interruption and deadlines end the step whatever check says; they are re-raised here, after
  // the journal has the record.
  if (interrupt_requested()) throw Interrupted(failure.empty() ? "interrupted" : failure);
  if (deadline_ != SteadyTime::max() && std::chrono::steady_clock::now() > deadline_ &&
      !failure.empty())
    throw DeadlineExceeded(failure);

  if (fake_timeout) throw DeadlineExceeded(failure);
  if (!looping.empty()) throw RehearsalLoop(looping);
  if (!failure.empty()) {
    if (takes_failures(e, args))
      return CallResult{true, with_failure(raw, failure), ""};
    return CallResult{false, raw, failure, bad_argument};
  }
  // Checkable results always say whether they succeeded, planned ones included.
  // (A predicted unknown stays one: whether it succeeded is not known either.)
  if (e.checkable && raw.is_object() && !is_unknown(raw)) raw["ok"] = true;
  return CallResult{true, raw, ""};
}

json Dispatcher::answer_under_test(const Effect& e, const Args& args, bool* timed_out) {
  std::optional<FakeAnswer> fake = opts_.fakes->answer(e, args.raw());
  if (!fake) {
    // A sleep takes no time under test but moves the clock on, so a wait.until that never
    // holds ends at its timeout after its polls (timeout / interval of them), not after a busy
    // loop of real seconds journaling thousands of probes.
    if (e.name == "sleep") {
      int64_t ms = args.duration("duration").count();
      test_clock_ms_ += ms;
      return json{{"slept", ms}};
    }
    if (e.name == "time.now") return (now_epoch_ms() + test_clock_ms_) / 1000.0;
    json r = e.planned ? e.planned(args, nullptr) : json::object();
    if (r.is_object()) r["planned"] = true;
    return r;
  }
  switch (fake->kind) {
    case FakeAnswer::Kind::Fail: throw EffectError(fake->message);
    case FakeAnswer::Kind::Timeout:
      *timed_out = true;
      throw DeadlineExceeded("the step's deadline passed");
    case FakeAnswer::Kind::Result: break;
  }
  // A checkable effect's fake that says ok = false is that effect failing with this result, as
  // live: the call raises, or returns it (ok = false, error) under check = false.
  if (e.checkable && fake->result.is_object() && fake->result.contains("ok") && fake->result["ok"] == false) {
    const json& why = fake->result.contains("error") ? fake->result["error"] : json();
    throw EffectError(why.is_string() ? why.get<std::string>() : "failed (a fake with ok = false)", fake->result);
  }
  return fake->result;
}

}  // namespace rb
