// replay RUN: the runbook again, every effect answered from the journal (nothing is performed,
// nothing is journaled). resume RUN: a failed or crashed live run continued as a new run linked
// to it, its completed effects answered from the journal and the rest performed.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/json_out.h"
#include "cli/commands.h"
#include "cli/history.h"
#include "cli/param_channels.h"
#include "cli/reporter.h"
#include "cli/terminal.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/source_file.h"
#include "core/strings.h"
#include "lua/runbook.h"
#include "os/procfs.h"

namespace rb::cli {
namespace fs = std::filesystem;

std::string journal_path_of(const HistoryCommon& c) {
  return c.journal_path.empty() ? Journal::default_path() : c.journal_path;
}

namespace {

std::unique_ptr<Reporter> reporter_for(const HistoryCommon& c) {
  ReporterOptions ro;
  ro.json = c.json;
  ro.color = !c.json && use_color(1, c.no_color);
  ro.tty = !c.json && is_tty(1);
  ro.verbose = c.verbose;
  return make_reporter(ro);
}

void emit(const json& j) { print_event(j); }

std::string call_text(const json& call) {
  if (!call.is_object()) return "(nothing)";
  if (call.contains("outcome")) return "run " + call["outcome"].get<std::string>();
  std::string site = call.value("site", std::string());
  if (!site.empty() && site.back() == ':') site.pop_back();
  return call.value("name", std::string("?")) + " " + call["args"].dump() +
         (site.empty() ? "" : "   at " + site);
}

// "effect #5 in step 2 'notify'": where a replay departed, for people.
std::string divergence_text(const json& d, const std::vector<StepRecord>& steps, int64_t run_id) {
  std::string reason = d.value("reason", std::string());
  auto step_label = [&](int idx, std::string name) {
    if (name.empty())
      for (const auto& s : steps)
        if (s.idx == idx) name = s.name;
    return "step " + std::to_string(idx) + (name.empty() ? "" : " '" + name + "'");
  };
  std::string where = "effect #" + std::to_string(d.value("effect", int64_t(0)));
  if (d.contains("step"))
    where += " in " + step_label(d.value("step", 0), d.value("step_name", std::string()));
  std::string out;
  if (reason == "differs")
    out = "the replay departs from run #" + std::to_string(run_id) + " at " + where + ":\n" +
          "  expected (journal): " + call_text(d["expected"]) + "\n" +
          "  actual (this file): " + call_text(d["actual"]);
  else if (reason == "extra")
    out = "the replay departs from run #" + std::to_string(run_id) + " at " + where +
          ": this file makes an effect the original never made:\n" +
          "  expected (journal): (no more effects)\n" +
          "  actual (this file): " + call_text(d["actual"]);
  else if (reason == "missing")
    out = "the replay departs from run #" + std::to_string(run_id) + " at " + where +
          ": this file ends before making it:\n" +
          "  expected (journal): " + call_text(d["expected"]) + "\n" +
          "  actual (this file): (no more effects)";
  else
    out = "the replay departs from run #" + std::to_string(run_id) + " in how it ends:\n" +
          "  expected (journal): " + call_text(d["expected"]) + "\n" +
          "  actual (this file): " + call_text(d["actual"]) +
          (d["actual"].is_object() && !d["actual"].value("error", std::string()).empty()
               ? " (" + d["actual"]["error"].get<std::string>() + ")"
               : "");
  return out;
}

// "" when the file is gone; a device, FIFO or huge file is refused as the loader would.
std::string file_sha(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  std::string bytes, err;
  if (!read_source_file(path, &bytes, &err)) throw UsageError(err);
  return sha256_hex(bytes);
}

}  // namespace

void process_info(RunRecord& run) {
  run.pid_start = static_cast<int64_t>(self_start_ticks());  // the same as the lock row's
}

bool still_running(const RunRecord& r) {
  if (r.outcome != "running" || r.pid <= 0) return false;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  // Another host's process cannot be seen from here (resume leaves that to the operator).
  if (r.host != host) return false;
  auto p = os::read_stat(static_cast<pid_t>(r.pid));
  if (!p || p->state == 'Z') return false;
  if (r.pid_start) return static_cast<int64_t>(p->start_ticks) == r.pid_start;
  std::ifstream comm("/proc/" + std::to_string(r.pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name.empty() || name.find("runbook") != std::string::npos;
}

void show_crashed(RunRecord& r) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  if (r.outcome != "running" || r.host != host || still_running(r)) return;
  r.outcome = "crashed";
  if (r.error.empty())
    r.error = "the process (pid " + std::to_string(r.pid) +
              ") ended without finishing the run; continue it with: runbook resume " +
              std::to_string(r.id);
}

int cmd_replay(const HistoryCommon& c, const std::string& run_text, const std::string& against) {
  Journal j(journal_path_of(c));
  int64_t id = resolve_run_id(j, run_text);
  RunRecord run = *j.run(id);
  if (run.mode == "replay") throw UsageError("run #" + std::to_string(id) + " is itself a replay");
  if (run.outcome == "error")
    throw UsageError("run #" + std::to_string(id) + " never started (" + run.error +
                     "): there is nothing to replay");
  std::string file = against.empty() ? run.file : against;
  if (against.empty()) {
    std::string now = file_sha(file);
    if (now.empty())
      throw UsageError("run #" + std::to_string(id) + "'s runbook " + file +
                       " is gone; replay a copy of it with --against FILE");
    if (now != run.sha256)
      throw UsageError("the runbook " + file + " has changed since run #" + std::to_string(id) +
                       " (sha256 " + run.sha256.substr(0, 12) + " then, " + now.substr(0, 12) +
                       " now), so replaying it would not show what ran.\n  To see where the new "
                       "version departs from that run: runbook replay " + std::to_string(id) +
                       " --against " + file);
  }
  auto effects = j.effects(id);
  auto steps = j.steps(id);

  ExecRequest req;
  req.file = file;
  req.typed_params = run.params;
  req.options.mode = Mode::Replay;
  req.options.offline = run.offline;
  req.options.seen_id = root_run_id(j, run);
  if (auto root = j.run(req.options.seen_id)) req.options.seen_started_ms = root->started_ms;
  req.options.seen_mode = run.mode == "resume" ? "live" : run.mode;
  req.parent_id = id;
  req.seed = run.seed;
  req.recorded = effects;
  req.recorded_steps = steps;
  req.recorded_outcome = run.outcome;
  if (against.empty()) {
    req.expect_sha256 = run.sha256;
    req.expect_modules = run.modules;
  }

  Style st;
  st.on = !c.json && use_color(1, c.no_color);
  if (c.json)
    emit({{"event", "replay_begin"}, {"of", id}, {"file", file}, {"against", !against.empty()},
          {"recorded_effects", effects.size()}, {"recorded_outcome", run.outcome}});
  else
    std::printf("%s\n", st.dim("replay of run #" + std::to_string(id) + " (" + run.mode + ", " +
                               run.outcome + ", " + iso_utc(run.started_ms) +
                               "): every effect is answered from the journal; nothing is "
                               "performed")
                            .c_str());
  auto reporter = reporter_for(c);
  ExecResult res = execute(req, nullptr, reporter.get(), builtin_registry());
  if (res.exit_code == kExitUsage && !res.started && res.divergence.is_null()) {
    if (c.json) emit({{"event", "error"}, {"error", res.error}, {"exit_code", 2}});
    else std::fprintf(stderr, "runbook: %s\n", res.error.c_str());
    return kExitUsage;
  }
  if (!res.divergence.is_null()) {
    std::string text = divergence_text(res.divergence, steps, id);
    if (c.json) {
      json d = res.divergence;
      d["event"] = "divergence";
      d["of"] = id;
      d["message"] = text;
      emit(d);
    } else {
      std::printf("\n%s\n", st.red(text).c_str());
    }
    return kExitFailed;
  }
  bool incomplete = run.outcome != "succeeded" && run.outcome != "failed";
  std::string summary = "the replay matches run #" + std::to_string(id) + ": " +
                        std::to_string(res.answered) + " effects answered from the journal, " +
                        (incomplete ? "and the journal ends where the run was " + run.outcome
                                    : "ending " + run.outcome + " as it did");
  if (c.json)
    emit({{"event", "replay_end"}, {"of", id}, {"matches", true}, {"answered", res.answered},
          {"outcome", res.outcome}, {"recorded_outcome", run.outcome}});
  else
    std::printf("%s\n", st.green(summary).c_str());
  return kExitOk;
}

int cmd_resume(const HistoryCommon& c, const std::string& run_text, const ResumeFlags& f) {
  if (f.assume_done && f.redo) throw UsageError("--assume-done and --redo exclude each other");
  Journal j(journal_path_of(c));
  int64_t id = resolve_run_id(j, run_text);
  RunRecord run = *j.run(id);
  Style st;
  st.on = !c.json && use_color(1, c.no_color);
  // Resuming a run that was resumed already means resuming its latest continuation: the
  // earlier journal does not know what the continuation did.
  while (run.resumed_by) {
    auto next = j.run(run.resumed_by);
    if (!next) break;
    if (!c.json)
      std::printf("%s\n", st.dim("run #" + std::to_string(run.id) + " was resumed by run #" +
                                 std::to_string(next->id) + "; continuing from that one")
                              .c_str());
    run = *next;
  }
  std::string rid = "run #" + std::to_string(run.id);
  if (run.mode != "live" && run.mode != "resume")
    throw UsageError(rid + " was a " + run.mode + "; only a live run can be resumed");
  if (run.outcome == "succeeded") throw UsageError(rid + " succeeded: there is nothing to resume");
  if (run.outcome == "error")
    throw UsageError(rid + " never started (" + run.error + "); run it again with exec");
  if (still_running(run))
    throw UsageError(rid + " is still running (pid " + std::to_string(run.pid) +
                     " on this host); stop it first (Ctrl-C) or wait for it");
  std::string now = file_sha(run.file);
  if (now.empty()) throw UsageError(rid + "'s runbook " + run.file + " is gone");
  if (now != run.sha256)
    throw UsageError("the runbook " + run.file + " has changed since " + rid + " (sha256 " +
                     run.sha256.substr(0, 12) + " then, " + now.substr(0, 12) +
                     " now); a resume must run the same file. Put the old version back (git " +
                     (run.git_commit.empty() ? std::string("history") : run.git_commit.substr(0, 12)) +
                     "), or start a new run with exec");

  auto effects = j.effects(run.id);
  auto steps = j.steps(run.id);
  ResumePoint rp = resume_point(steps, effects);
  InDoubt choice = f.assume_done ? InDoubt::AssumeDone : f.redo ? InDoubt::Redo : InDoubt::Verify;
  if (rp.in_doubt_seq && choice == InDoubt::Verify) {
    // Nothing can verify it: say so now rather than after answering the prefix.
    for (const auto& e : effects) {
      if (e.seq != rp.in_doubt_seq || e.kind != "change") continue;
      const Effect* eff = builtin_registry().find(e.name);
      if (eff && eff->verify) break;
      std::string site = e.site;
      if (!site.empty() && site.back() == ':') site.pop_back();
      std::string msg = "effect #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe +
                        ") at " + site + " began at " + iso_utc(e.started_ms) + " in run #" +
                        std::to_string(e.origin_run ? e.origin_run : e.run_id) +
                        " and never finished: it may or may not have taken place, and " + e.name +
                        " cannot tell from the world which.\n  args: " + e.args.dump() +
                        "\n  Look at the world, then resume with --assume-done (it took place: "
                        "go on after it) or --redo (perform it again).";
      if (c.json)
        emit({{"event", "in_doubt"}, {"run", run.id}, {"effect", e.seq}, {"name", e.name},
              {"args", e.args}, {"site", e.site}, {"message", msg},
              {"choices", {"--assume-done", "--redo"}}});
      else
        std::fprintf(stderr, "runbook: %s\n", msg.c_str());
      return kExitInDoubt;
    }
  }

  ExecRequest req;
  req.file = run.file;
  for (const auto& kv : f.params) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--param expects name=value, got '" + kv + "'");
    req.params[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  req.typed_params = run.params;
  if (run.extra.contains("secrets_given") && run.extra["secrets_given"].is_array())
    req.secrets_given = run.extra["secrets_given"].get<std::vector<std::string>>();
  req.param_source = param_channels(f.param_file, is_tty(0));
  req.warn_argv_secrets = true;
  req.resume = true;
  req.allow_param_change = f.allow_param_change;
  req.parent_id = run.id;
  req.seed = run.seed;
  req.recorded = effects;
  req.answer_through = rp.answer_through;
  req.recorded_steps = steps;
  req.recorded_outcome = run.outcome;
  req.live_attempt = {rp.step, rp.attempt};
  req.expect_sha256 = run.sha256;
  req.expect_modules = run.modules;
  req.options.mode = Mode::Live;
  req.options.yes = f.yes;
  req.options.interactive = is_tty(0) && !c.json;
  req.options.seen_id = root_run_id(j, run);
  if (auto root = j.run(req.options.seen_id)) req.options.seen_started_ms = root->started_ms;
  req.options.seen_mode = "live";
  req.options.in_doubt = choice;
  req.source_info = [](RunRecord& r) {
    git_source_info(r);
    process_info(r);
  };
  req.extra["resume"] = {{"of", run.id},
                         {"answer_through", rp.answer_through},
                         {"in_doubt", rp.in_doubt_seq},
                         {"choice", f.assume_done ? "assume-done" : f.redo ? "redo" : "verify"}};

  std::string plan = rp.answer_through
                         ? "effects #1–#" + std::to_string(rp.answer_through) +
                               " are answered from the journal; live from effect #" +
                               std::to_string(rp.answer_through + 1)
                         : "nothing completed to answer; live from the first effect";
  if (rp.in_doubt_seq) plan += " (in doubt: it began and never finished)";
  if (c.json)
    emit({{"event", "resume_begin"}, {"of", run.id}, {"answer_through", rp.answer_through},
          {"in_doubt", rp.in_doubt_seq}});
  else
    std::printf("%s\n", st.dim("resuming " + rid + " (" + run.outcome + "): " + plan).c_str());

  // A resume takes the original's lock, as a live run does.
  auto locks = open_locks(j);
  req.locks = locks.get();
  req.start_ticks = self_start_ticks();
  if (!f.wait_lock.empty()) req.wait_lock = parse_wait_lock(f.wait_lock);

  auto reporter = reporter_for(c);
  ExecResult res = execute(req, &j, reporter.get(), builtin_registry());
  j.flush();
  if (!j.failure().empty() && res.run_id) {
    std::fprintf(stderr,
                 "runbook: %s\n  run #%lld could not be journaled to its end; it shows as crashed. "
                 "Once the journal can be written again: runbook resume %lld\n",
                 j.failure().c_str(), static_cast<long long>(res.run_id),
                 static_cast<long long>(res.run_id));
    if (res.exit_code == kExitOk) res.exit_code = kExitFailed;
  }
  if (!res.lock.is_null()) {
    print_lock_stop(c.json, res);
    return res.exit_code;
  }
  if (res.exit_code == kExitUsage && !res.started) {
    if (c.json) emit({{"event", "error"}, {"run", res.run_id}, {"error", res.error}, {"exit_code", 2}});
    else std::fprintf(stderr, "runbook: %s\n", res.error.c_str());
    return kExitUsage;
  }
  if (!res.in_doubt.is_null()) {
    if (c.json) {
      json d = res.in_doubt;
      d["event"] = "in_doubt";
      emit(d);
    } else {
      std::fprintf(stderr, "\nrunbook: the resume stopped at a change in doubt: %s\n",
                   res.error.c_str());
    }
  } else if (!res.divergence.is_null() && !c.json) {
    std::printf("%s\n", st.red(divergence_text(res.divergence, steps, run.id)).c_str());
  }
  return res.exit_code;
}

}  // namespace rb::cli
