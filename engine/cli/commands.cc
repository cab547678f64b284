#include "cli/commands.h"
#include "cli/version.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/api_doc.h"
#include "cli/cli_docs.h"
#include "cli/config.h"
#include "cli/history.h"
#include "cli/init_cmd.h"
#include "cli/json_out.h"
#include "cli/lint.h"
#include "cli/param_channels.h"
#include "cli/reporter.h"
#include "cli/terminal.h"
#include "cli/test_cmd.h"
#include "cli/usage.h"
#include "core/error.h"
#include "core/strings.h"
#include "lua/runbook.h"
#include "os/procfs.h"

namespace rb::cli {
namespace {

struct Common {
  std::string journal_path;
  bool json = false;
  bool no_color = false;
};

std::string journal_path(const Common& c) {
  return c.journal_path.empty() ? Journal::default_path() : c.journal_path;
}

std::map<std::string, std::string> parse_params(const std::vector<std::string>& kvs) {
  std::map<std::string, std::string> out;
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--param expects name=value, got '" + kv + "'");
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

std::string when(int64_t ms) {
  if (!ms) return "-";
  std::string iso = iso_utc(ms);
  return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

std::string took(const RunRecord& r) {
  if (!r.ended_ms) return "-";
  return format_duration(Millis(r.ended_ms - r.started_ms));
}

json run_json(const RunRecord& r) {
  return json{{"id", r.id}, {"parent_id", r.parent_id}, {"resumed_by", r.resumed_by}, {"plan_id", r.plan_id},
              {"pid", r.pid}, {"runbook", r.runbook}, {"version", r.version},
              {"file", r.file}, {"sha256", r.sha256}, {"modules", r.modules},
              {"git_commit", r.git_commit}, {"git_dirty", r.git_dirty}, {"params", r.params},
              {"mode", r.mode}, {"offline", r.offline}, {"host", r.host}, {"user", r.user},
              {"cwd", r.cwd}, {"seed", r.seed}, {"started_ms", r.started_ms}, {"ended_ms", r.ended_ms},
              {"started", iso_utc(r.started_ms)}, {"duration_ms", r.ended_ms ? r.ended_ms - r.started_ms : 0},
              {"outcome", r.outcome}, {"error", r.error}, {"exit_code", r.exit_code},
              {"steps_total", r.steps_total}, {"artifacts", r.artifacts}, {"extra", r.extra}};
}

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// A plan refused before anything ran (exit 4): drifted, or executed already.
int refuse_plan(const Common& c, const std::string& plan_path, const PlanCheck& pc,
                const std::string& reason, const std::string& msg) {
  if (c.json) {
    json ev{{"event", "refused"}, {"reason", reason}, {"plan", pc.plan_id}, {"plan_path", plan_path},
            {"error", msg}, {"exit_code", kExitRefused}};
    if (reason == "plan_drift") ev["drift"] = pc.drift;
    if (pc.executed_by) ev["executed_by"] = pc.executed_by;
    print_event(ev);
    return kExitRefused;
  }
  std::fprintf(stderr, "runbook: %s\n", msg.c_str());
  if (reason == "plan_drift") {
    for (const auto& d : pc.drift)
      std::fprintf(stderr, "  - %s\n      planned: %s\n      now:     %s\n", text_of(d["what"]).c_str(),
                   truncate(text_of(d["planned"]), 300).c_str(), truncate(text_of(d["now"]), 300).c_str());
    std::fprintf(stderr, "Make a new plan: runbook exec %s --dry-run --save-plan PLAN\n", pc.file.c_str());
  }
  return kExitRefused;
}

// What --save-plan tells: where the plan is, what the rehearsal could not check, and the command
// that executes it, with the secret parameters it needs given again (the plan does not hold them).
void print_plan_saved(const Common& c, const std::string& path, const json& plan, int64_t dry_run) {
  std::string cmd = "runbook exec --plan " + path;
  json secrets = json::array();
  if (plan.contains("secrets_given") && plan["secrets_given"].is_array())
    for (const auto& n : plan["secrets_given"])
      if (n.is_string()) {
        secrets.push_back(n);
        cmd += " -p " + n.get<std::string>() + "=...";
      }
  const json& live_only = plan["checked_live_only"];
  if (c.json) {
    print_event(json{{"event", "plan_saved"}, {"path", path}, {"plan", plan["id"]}, {"run", dry_run},
                     {"run_id", plan["run_id"]}, {"secrets_needed", secrets},
                     {"checked_live_only", live_only}, {"command", cmd}});
    return;
  }
  std::printf("plan saved to %s (%s); it will execute as run #%lld\n", path.c_str(),
              plan["id"].get<std::string>().c_str(), static_cast<long long>(plan["run_id"].get<int64_t>()));
  if (!live_only.empty()) {
    std::printf("checked live only (the rehearsal could not check these):\n");
    for (const auto& x : live_only) {
      if (!x.is_object()) {
        std::printf("  - %s\n", text_of(x).c_str());
        continue;
      }
      std::string what = x.contains("seq") ? "#" + text_of(x["seq"]) + " " : "";
      what += x.contains("name") ? text_of(x["name"]) : "step " + text_of(x.value("step", json("?")));
      if (x.contains("describe")) what += " (" + text_of(x["describe"]) + ")";
      if (x.contains("why")) what += ": " + text_of(x["why"]);
      std::printf("  - %s\n", what.c_str());
    }
  }
  std::printf("execute it (once) with: %s\n", cmd.c_str());
  if (!secrets.empty()) {
    std::string names;
    for (const auto& n : secrets) names += (names.empty() ? "" : ", ") + n.get<std::string>();
    std::printf("  the plan does not hold secrets: give %s again (--param-file FILE, RUNBOOK_PARAM_<NAME>, or the prompt)\n", names.c_str());
  }
}

// The run row a --save-plan reserves, deleted unless the plan is saved.
struct ReservationGuard {
  Journal* j = nullptr;
  PlanReservation r;
  ~ReservationGuard() {
    if (!j || !r.run_id) return;
    try {
      drop_plan_reservation(*j, r);
    } catch (const std::exception&) {
      // Not a run: a reserved row left behind is not listed, and no plan refers to it.
    }
  }
};

int cmd_exec(const Common& c, std::string file, bool dry, bool offline,
             const std::vector<std::string>& kvs, const std::string& param_file, bool yes,
             bool verbose, const std::string& save_plan_path, const std::string& plan_path,
             const std::string& wait_lock) {
  if (offline && !dry) throw UsageError("--offline goes with --dry-run");
  if (!wait_lock.empty() && dry)
    throw UsageError("--wait-lock goes with a live run: a dry-run takes no lock");
  if (!save_plan_path.empty() && !dry) throw UsageError("--save-plan goes with --dry-run");
  if (!plan_path.empty() && dry) throw UsageError("--plan executes a plan; it does not go with --dry-run");
  if (!save_plan_path.empty() && offline)
    throw UsageError("--save-plan needs the probes' results: not with --offline");
  if (file.empty() && plan_path.empty())
    throw UsageError("exec needs the runbook file (or --plan PLAN, which names it)");
  Journal journal(journal_path(c));
  PlanCheck pc;
  if (!plan_path.empty()) {
    pc = check_plan(journal, plan_path, file, parse_params(kvs));
    file = pc.file;
    if (pc.executed_by) {
      auto by = journal.run(pc.executed_by);
      std::string msg = "the plan " + plan_path + " (" + pc.plan_id + ") was executed already, by run #" +
                        std::to_string(pc.executed_by) +
                        (by ? " at " + iso_utc(by->started_ms) + " (" + by->outcome + ")" : "") +
                        "; a plan executes at most once";
      return refuse_plan(c, plan_path, pc, "plan_executed", msg);
    }
    if (!pc.drift.empty())
      return refuse_plan(c, plan_path, pc, "plan_drift",
                         "the plan " + plan_path + " no longer holds, so nothing was executed. What drifted:");
    if (pc.planned_run_id && !pc.reserved) {
      std::string note = "the plan was made for run #" + std::to_string(pc.planned_run_id) +
                         ", which is not reserved in " + journal.path() +
                         " (another journal?): it executes as a new run, so its run id differs "
                         "from the plan's";
      if (c.json) print_event(json{{"event", "log"}, {"level", "warn"}, {"message", note}});
      else std::fprintf(stderr, "runbook: %s\n", note.c_str());
    }
  }
  ReporterOptions ro;
  ro.json = c.json;
  ro.color = !c.json && use_color(1, c.no_color);
  ro.tty = !c.json && is_tty(1);
  ro.verbose = verbose;
  auto reporter = make_reporter(ro);
  ExecRequest req;
  req.file = file;
  req.params = parse_params(kvs);
  req.options.mode = dry ? Mode::DryRun : Mode::Live;
  req.options.offline = offline;
  req.options.yes = yes;
  req.options.interactive = is_tty(0) && !c.json;
  req.param_source = param_channels(param_file, is_tty(0));
  req.warn_argv_secrets = true;
  req.source_info = [](RunRecord& r) {
    git_source_info(r);
    process_info(r);
  };
  if (!plan_path.empty()) {
    req.typed_params = pc.params;
    req.reuse_params = true;
    req.plan_id = pc.plan_id;
    if (pc.reserved) req.claim_run_id = pc.planned_run_id;
    req.extra["plan"] = {{"id", pc.plan_id}, {"path", plan_path}};
  }
  ReservationGuard reservation;
  if (!save_plan_path.empty()) {
    reservation.r = reserve_plan_run(journal, file);
    reservation.j = &journal;
    req.options.seen_id = reservation.r.run_id;
  }
  std::unique_ptr<RunLocks> locks;
  if (!dry) {
    locks = open_locks(journal);
    req.locks = locks.get();
    req.start_ticks = self_start_ticks();
    if (!wait_lock.empty()) req.wait_lock = parse_wait_lock(wait_lock);
  }
  ExecResult res = execute(req, &journal, reporter.get(), builtin_registry());
  journal.flush();
  if (!journal.failure().empty() && res.run_id) {
    // The run's end (or more) is not in the journal: it will show as crashed, and resumable.
    std::fprintf(stderr,
                 "runbook: %s\n  run #%lld could not be journaled to its end; it shows as crashed. "
                 "Once the journal can be written again: runbook resume %lld\n",
                 journal.failure().c_str(), static_cast<long long>(res.run_id),
                 static_cast<long long>(res.run_id));
    if (res.exit_code == kExitOk) res.exit_code = kExitFailed;
  }
  if (!res.lock.is_null()) {
    print_lock_stop(c.json, res);
    return res.exit_code;
  }
  if (!plan_path.empty() && res.exit_code == kExitRefused && !res.run_id) {
    pc.executed_by = pc.planned_run_id;
    return refuse_plan(c, plan_path, pc, "plan_executed",
                       "the plan " + plan_path + " was not executed: " + res.error);
  }
  if (!save_plan_path.empty()) {
    if (res.exit_code != kExitOk || res.outcome != "succeeded") {
      std::string msg = "no plan saved: the dry-run did not succeed (exit " + std::to_string(res.exit_code) + ")";
      if (c.json) print_event(json{{"event", "log"}, {"level", "warn"}, {"message", msg}});
      else std::fprintf(stderr, "runbook: %s\n", msg.c_str());
    } else {
      json plan = save_plan(journal, res.run_id, save_plan_path, reservation.r);
      reservation.j = nullptr;  // kept: the plan's execution claims it
      print_plan_saved(c, save_plan_path, plan, res.run_id);
    }
  }
  // A run that never started (a usage error, a plan another run executed meanwhile) said
  // nothing yet; one that did has said how it ended (run_end).
  if (!res.started && (res.exit_code == kExitUsage || res.exit_code == kExitRefused)) {
    if (c.json)
      print_event(json{{"event", res.exit_code == kExitRefused ? "refused" : "error"},
                       {"run", res.run_id}, {"error", res.error},
                       {"exit_code", res.exit_code}});
    else
      std::fprintf(stderr, "runbook: %s\n", res.error.c_str());
  }
  return res.exit_code;
}

int cmd_check(const std::string& file, bool as_json) {
  Runbook book(builtin_registry());
  book.load(file);
  const auto& d = book.decl();
  if (as_json) {
    json params = json::array(), steps = json::array(), warnings = json::array();
    for (const auto& p : d.params) {
      json o{{"name", p.name}, {"type", p.type}, {"required", p.required}, {"secret", p.secret}, {"doc", p.doc}};
      if (!p.def.is_null() && !p.secret) o["default"] = p.def;
      params.push_back(o);
    }
    int n = 0;
    for (const auto& s : d.steps)
      steps.push_back({{"index", ++n}, {"name", s.name}, {"retries", s.retries}, {"always", s.always}});
    try {
      for (const auto& f : lint_files({file}))
        warnings.push_back({{"file", f.file}, {"line", f.line}, {"col", f.col}, {"severity", "warning"},
                            {"code", f.code}, {"message", f.message}});
    } catch (const std::exception& e) {
      warnings.push_back({{"file", file}, {"line", 1}, {"col", 1}, {"severity", "warning"}, {"code", ""},
                          {"message", std::string("not linted: ") + e.what()}});
    }
    print_typed("check", json{{"file", file}, {"name", d.name}, {"version", d.version}, {"summary", d.summary},
                              {"params", params}, {"steps", steps}, {"warnings", warnings}});
    return kExitOk;
  }
  std::printf("%s %s — %s\n", d.name.c_str(), d.version.c_str(), d.summary.c_str());
  if (!d.params.empty()) {
    std::printf("params:\n");
    for (const auto& p : d.params)
      std::printf("  %-14s %-8s%s%s%s%s\n", p.name.c_str(), p.type.c_str(), p.required ? " required" : "",
                  p.secret ? " secret" : "",
                  p.def.is_null() || p.secret ? "" : (" default " + (p.def.is_string() ? p.def.get<std::string>() : p.def.dump())).c_str(),
                  p.doc.empty() ? "" : ("  — " + p.doc).c_str());
  }
  std::printf("steps:\n");
  int i = 0;
  for (const auto& s : d.steps)
    std::printf("  %d. %s%s%s\n", ++i, s.name.c_str(),
                s.retries ? (" (retries " + std::to_string(s.retries) + ")").c_str() : "",
                s.always ? " (always)" : "");
  std::fflush(stdout);
  print_lint_warnings(file);  // the checks of `runbook lint`, as warnings
  return kExitOk;
}

int cmd_runs(const Common& c, const std::string& runbook, int limit) {
  Journal j(journal_path(c));
  RunFilter f;
  f.runbook = runbook;
  f.limit = limit;
  auto runs = j.runs(f);
  for (auto& r : runs) show_crashed(r);
  if (c.json) {
    for (const auto& r : runs) print_typed("run", run_json(r));
    return 0;
  }
  if (runs.empty()) {
    std::printf("no runs in %s\n", j.path().c_str());
    return 0;
  }
  // Which version ran when: declared version, content hash, and the commit (+ if the file
  // differed from it).
  std::printf("%-6s %-24s %-9s %-8s %-9s %-18s %-12s %-20s %s\n", "RUN", "RUNBOOK", "VERSION", "SHA256", "GIT", "MODE", "OUTCOME", "STARTED (UTC)", "TOOK");
  for (const auto& r : runs)
    std::printf("%-6lld %-24s %-9s %-8s %-9s %-18s %-12s %-20s %s\n", static_cast<long long>(r.id),
                truncate(r.runbook, 24).c_str(), truncate(r.version, 9).c_str(),
                r.sha256.substr(0, 8).c_str(),
                r.git_commit.empty() ? "-" : (r.git_commit.substr(0, 7) + (r.git_dirty ? "+" : "")).c_str(),
                (r.mode + (r.offline ? ",offline" : "") + (r.parent_id ? " of #" + std::to_string(r.parent_id) : "")).c_str(),
                r.outcome.c_str(), when(r.started_ms).c_str(), took(r).c_str());
  for (const auto& r : runs)
    if (r.outcome == "crashed" && !r.resumed_by)
      std::printf("run #%lld crashed (its process is gone): continue it with: runbook resume %lld\n",
                  static_cast<long long>(r.id), static_cast<long long>(r.id));
  if (!runbook.empty()) {
    // The versions of this runbook that ran, oldest first, with their first and last run.
    std::vector<std::string> order;
    std::map<std::string, std::pair<const RunRecord*, const RunRecord*>> seen;
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      std::string key = it->version + " " + it->sha256.substr(0, 8);
      if (!seen.count(key)) {
        order.push_back(key);
        seen[key] = {&*it, &*it};
      }
      seen[key].second = &*it;
    }
    std::printf("\nversions of %s:\n", runbook.c_str());
    for (const auto& k : order)
      std::printf("  %-20s runs #%lld to #%lld  (%s to %s)\n", k.c_str(),
                  static_cast<long long>(seen[k].first->id), static_cast<long long>(seen[k].second->id),
                  when(seen[k].first->started_ms).c_str(), when(seen[k].second->started_ms).c_str());
  }
  return 0;
}

// The held run locks, and which of them are stale (their process is gone: the next run with
// that key takes them over).
int cmd_locks(const Common& c) {
  Journal j(journal_path(c));
  auto locks = open_locks(j);
  auto held = locks->list();
  auto state = [&](const LockHolder& h) {
    auto run = j.run(h.run_id);
    if (run && run->outcome != "running") return "stale: run #" + std::to_string(h.run_id) + " has ended (" + run->outcome + ")";
    std::string gone = lock_holder_gone(h);
    return gone.empty() ? std::string("held") : "stale: " + gone;
  };
  if (c.json) {
    for (const auto& h : held)
      print_typed("lock", json{{"key", h.key}, {"run_id", h.run_id}, {"runbook", h.runbook}, {"user", h.user},
                               {"host", h.host}, {"pid", h.pid}, {"start_ticks", h.start_ticks}, {"since_ms", h.since_ms},
                               {"since", iso_utc(h.since_ms)}, {"state", state(h)}});
    return 0;
  }
  if (held.empty()) {
    std::printf("no run locks held in %s\n", j.path().c_str());
    return 0;
  }
  std::printf("%-32s %-6s %-20s %-24s %-8s %-20s %s\n", "LOCK", "RUN", "RUNBOOK", "BY", "PID", "SINCE (UTC)", "STATE");
  for (const auto& h : held)
    std::printf("%-32s %-6lld %-20s %-24s %-8lld %-20s %s\n", truncate(h.key, 32).c_str(),
                static_cast<long long>(h.run_id), truncate(h.runbook, 20).c_str(),
                truncate(h.user + "@" + h.host, 24).c_str(), static_cast<long long>(h.pid),
                when(h.since_ms).c_str(), state(h).c_str());
  return 0;
}

int cmd_show(const Common& c, const std::string& id_text) {
  Journal j(journal_path(c));
  int64_t id = resolve_run_id(j, id_text, true);
  auto run = j.run(id);
  if (run->outcome == "reserved") {
    if (c.json) {
      print_typed("run_record", json{{"id", run->id}, {"outcome", "reserved"}, {"plan_id", run->plan_id},
                                     {"runbook", run->runbook}, {"file", run->file}, {"params", run->params}});
    } else {
      std::printf("#%lld is reserved for plan %s (%s %s): not executed yet\n", static_cast<long long>(run->id),
                  run->plan_id.c_str(), run->runbook.c_str(), run->file.c_str());
      std::printf("  executing the plan runs it as run #%lld: runbook exec --plan PLAN\n", static_cast<long long>(run->id));
    }
    return 0;
  }
  show_crashed(*run);
  auto steps = j.steps(id);
  auto effects = j.effects(id);
  auto logs = j.logs(id);
  if (c.json) {
    json out = run_json(*run);
    out["steps"] = json::array();
    for (const auto& s : steps)
      out["steps"].push_back({{"idx", s.idx}, {"attempt", s.attempt}, {"name", s.name},
                              {"outcome", s.outcome}, {"error", s.error}, {"started_ms", s.started_ms},
                              {"ended_ms", s.ended_ms}});
    out["effects"] = json::array();
    for (const auto& e : effects)
      out["effects"].push_back({{"seq", e.seq}, {"step", e.step_idx}, {"attempt", e.attempt},
                                {"name", e.name}, {"kind", e.kind}, {"args", e.args},
                                {"describe", e.describe}, {"state", e.state}, {"result", e.result},
                                {"preview", e.preview}, {"error", e.error}, {"site", e.site},
                                {"started_ms", e.started_ms}, {"ended_ms", e.ended_ms},
                                {"origin", e.origin}, {"origin_run", e.origin_run}});
    out["logs"] = json::array();
    for (const auto& l : logs)
      out["logs"].push_back({{"seq", l.seq}, {"step", l.step_idx}, {"level", l.level},
                             {"message", l.message}, {"at_ms", l.at_ms}});
    // One line, like every --json output: the run with its steps, effects and logs.
    print_typed("run_record", out);
    return 0;
  }
  Style st;
  st.on = use_color(1, c.no_color);
  std::printf("%s\n", st.bold("run #" + std::to_string(run->id) + "  " + run->runbook + " " + run->version).c_str());
  std::printf("  mode      %s%s%s\n", run->mode.c_str(), run->offline ? " (offline)" : "",
              run->parent_id ? (" — continues run #" + std::to_string(run->parent_id)).c_str() : "");
  std::printf("  outcome   %s (exit %d)%s\n", run->outcome.c_str(), run->exit_code,
              run->error.empty() ? "" : ("\n            " + run->error).c_str());
  std::printf("  started   %s UTC, took %s\n", when(run->started_ms).c_str(), took(*run).c_str());
  std::printf("  by        %s@%s in %s\n", run->user.c_str(), run->host.c_str(), run->cwd.c_str());
  std::printf("  version   %s\n", run->version.c_str());
  std::printf("  file      %s\n  sha256    %s\n", run->file.c_str(), run->sha256.c_str());
  for (auto it = run->modules.begin(); it != run->modules.end(); ++it)
    std::printf("  module    %s  sha256 %s\n", it.key().c_str(), it.value().get<std::string>().c_str());
  if (!run->git_commit.empty()) {
    std::string status = run->extra.contains("git") ? run->extra["git"].value("status", "") : "";
    std::printf("  git       %s%s\n", run->git_commit.c_str(),
                !run->git_dirty ? " (file as committed)"
                : status == "untracked" || status == "ignored" ? (" (file " + status + ")").c_str()
                                                               : " (file modified since the commit)");
  }
  if (run->resumed_by) std::printf("  resumed   by run #%lld\n", static_cast<long long>(run->resumed_by));
  if (!run->plan_id.empty()) std::printf("  plan      %s\n", run->plan_id.c_str());
  if (!run->params.empty()) std::printf("  params    %s\n", run->params.dump().c_str());
  if (!run->artifacts.empty()) std::printf("  artifacts %s\n", run->artifacts.c_str());
  // Each log line under the step (and attempt) that wrote it, before the effect that followed it.
  size_t li = 0;
  auto logs_while = [&](auto&& keep) {
    while (li < logs.size() && keep(logs[li])) {
      std::printf("      %s %s\n", logs[li].level == "info" ? "·" : "!", logs[li].message.c_str());
      ++li;
    }
  };
  for (size_t si = 0; si < steps.size(); ++si) {
    const auto& s = steps[si];
    // Lines of the run before this step (or of an earlier step not listed) go above it.
    logs_while([&](const LogRecord& l) {
      return l.step_idx == 0 ? l.at_ms <= s.started_ms : l.step_idx < s.idx;
    });
    auto logs_until = [&](int64_t seq) {
      logs_while([&](const LogRecord& l) { return l.step_idx == s.idx && l.seq <= seq; });
    };
    std::printf("\n%s  %s%s  — %s%s\n", st.bold("step " + std::to_string(s.idx)).c_str(), s.name.c_str(),
                s.attempt > 1 ? (" (attempt " + std::to_string(s.attempt) + ")").c_str() : "",
                s.outcome.c_str(), s.ended_ms ? (", " + format_duration(Millis(s.ended_ms - s.started_ms))).c_str() : "");
    for (const auto& e : effects) {
      if (e.step_idx != s.idx || e.attempt != s.attempt) continue;
      logs_until(e.seq - 1);
      std::string mark = e.state == "done" ? st.green("✓") : e.state == "failed" ? st.red("✗")
                       : e.state == "planned" ? st.cyan("~") : st.yellow("?");
      std::string origin = e.origin == "journal" ? "answered from run #" + std::to_string(e.origin_run)
                         : e.origin == "verified" ? "in doubt after run #" + std::to_string(e.origin_run) + " died; checked: it had taken place"
                         : e.origin == "assumed" ? "in doubt after run #" + std::to_string(e.origin_run) + " died; --assume-done"
                         : e.origin == "redone" ? "in doubt after run #" + std::to_string(e.origin_run) + " died; performed again"
                         : "";
      std::printf("  %s #%lld %s  %s  %s%s\n", mark.c_str(), static_cast<long long>(e.seq), e.name.c_str(),
                  e.describe.c_str(),
                  e.ended_ms ? format_duration(Millis(e.ended_ms - e.started_ms)).c_str() : "(in doubt: began, never finished)",
                  origin.empty() ? "" : st.dim("  (" + origin + ")").c_str());
      if (!e.preview.is_null()) std::printf("      %s\n", brief(e.preview.is_object() && e.preview.contains("text") ? e.preview["text"] : e.preview).c_str());
      if (!e.error.empty()) std::printf("      %s\n", st.red(e.error).c_str());
      else if (!e.result.is_null()) std::printf("      → %s\n", brief(e.result).c_str());
    }
    // The step's lines after its last effect; of a retried step, those of this attempt.
    bool retried = si + 1 < steps.size() && steps[si + 1].idx == s.idx;
    logs_while([&](const LogRecord& l) {
      return l.step_idx == s.idx && (!retried || !s.ended_ms || l.at_ms <= s.ended_ms);
    });
    if (s.outcome != "succeeded" && !s.error.empty()) std::printf("  %s\n", st.red(s.error).c_str());
  }
  logs_while([](const LogRecord&) { return true; });
  return 0;
}

}  // namespace

int64_t resolve_run_id(Journal& j, const std::string& text, bool allow_reserved) {
  int64_t id = 0;
  if (text == "last") {
    auto last = j.last_run_id();
    if (!last) throw UsageError("the journal " + j.path() + " has no runs yet");
    id = *last;
  } else {
    try {
      size_t used = 0;
      id = std::stoll(text, &used);
      if (used != text.size()) throw std::invalid_argument("x");
    } catch (const std::exception&) {
      throw UsageError("'" + text + "' is not a run id (a number, or 'last')");
    }
  }
  auto r = j.run(id);
  if (!r) throw UsageError("no run #" + std::to_string(id) + " in " + j.path());
  if (r->outcome == "reserved" && !allow_reserved)
    throw UsageError("#" + std::to_string(id) + " is not a run yet: it is reserved for plan " + r->plan_id +
                     " (runbook exec --plan PLAN executes it as run #" + std::to_string(id) + ")");
  return id;
}

std::string lock_holder_gone(const LockHolder& h) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  // Another host's process cannot be seen from here: it holds the lock until it gives it back.
  if (h.host != host || h.pid <= 0 || h.pid > INT32_MAX) return "";
  std::string pid = "pid " + std::to_string(h.pid);
  auto st = os::read_stat(static_cast<pid_t>(h.pid));
  if (!st || st->state == 'Z') return pid + " is no longer running on this host";
  if (h.start_ticks && st->start_ticks != h.start_ticks)
    return pid + " on this host is another process now (its start time differs)";
  return "";
}

std::unique_ptr<RunLocks> open_locks(Journal& j) { return open_run_locks(j, lock_holder_gone); }

uint64_t self_start_ticks() {
  auto st = os::read_stat(::getpid());
  return st ? st->start_ticks : 0;
}

void print_lock_stop(bool json_out, const ExecResult& res) {
  if (json_out) {
    json ev{{"event", res.exit_code == kExitRefused ? "refused" : "error"}, {"run", res.run_id},
            {"error", res.error}, {"lock", res.lock.value("key", "")}, {"exit_code", res.exit_code}};
    if (res.lock.contains("holder")) ev["holder"] = res.lock["holder"];
    print_event(ev);
  } else {
    std::fprintf(stderr, "runbook: %s\n", res.error.c_str());
  }
}

Millis parse_wait_lock(const std::string& text) {
  auto d = parse_duration(text);
  if (!d || d->count() <= 0)
    throw UsageError("--wait-lock expects a duration like 30s or 5m, got '" + text + "'");
  return *d;
}

// The exit statuses (README, docs/architecture.md), shown by `runbook --help` and `exec --help`.
const char* kExitStatusHelp =
    "Exit status:\n"
    "  0    succeeded\n"
    "  1    the procedure failed: an effect failed, or the runbook called error() or assert()\n"
    "  2    usage or runbook error, a bug found at run time included: calling a nil value\n"
    "       (fs.bakup), an undefined global or parameter (p.rooot), a bad argument to a\n"
    "       primitive, step() inside a step, a primitive outside a step\n"
    "  3    stopped at a change in doubt: resume with --assume-done or --redo\n"
    "  4    refused without acting: a drifted or already-executed plan, a lock held by\n"
    "       another run\n"
    "  130  interrupted (Ctrl-C or SIGTERM): the always = true steps still ran, unless\n"
    "       Ctrl-C was pressed again; a third Ctrl-C exits at once\n";

int run_cli(int argc, char** argv) {
  CLI::App app{"runbook — run operational procedures as versioned, journaled Lua runbooks", "runbook"};
  app.footer(kExitStatusHelp);
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    std::string t = version_text();
    if (!t.empty() && t.back() == '\n') t.pop_back();  // CLI11 ends the line
    return t;
  },
                       "the version, the commit it was built from and the libraries it runs with");
  Common c;
  auto add_common = [&](CLI::App* sub, bool with_json) {
    sub->add_option("--journal", c.journal_path, "journal database (default $RUNBOOK_JOURNAL, else $XDG_STATE_HOME/runbook/journal.db)");
    if (with_json) sub->add_flag("--json", c.json, "one JSON object per line instead of text");
    sub->add_flag("--no-color", c.no_color, "no colour (also NO_COLOR=1)");
  };

  std::string file, run_id, runbook_filter;
  bool dry = false, offline = false, yes = false, verbose = false, markdown = false;
  std::vector<std::string> params;
  int limit = 50;

  auto* exec = app.add_subcommand("exec", "run a runbook (live, or --dry-run)");
  exec->add_option("file", file, "the runbook (.lua); with --plan it may be left out (the plan names it)");
  exec->add_flag("--dry-run,-n", dry, "change nothing: probes run, changes are planned and shown");
  exec->add_flag("--offline", offline, "with --dry-run: do not probe either");
  exec->add_option("--param,-p", params, "a parameter, name=value (repeatable; a secret here is readable by every user: prefer --param-file or RUNBOOK_PARAM_<NAME>)")->take_all();
  std::string param_file;
  exec->add_option("--param-file", param_file, "parameters from this file, name=value lines (# comments): it must be yours and mode 600; -p wins over it, it wins over RUNBOOK_PARAM_<NAME>");
  exec->add_flag("--yes,-y", yes, "answer yes to every confirm()");
  exec->add_flag("--verbose,-v", verbose, "show each effect's result");
  std::string save_plan_path, plan_path;
  exec->add_option("--save-plan", save_plan_path, "with --dry-run: save the plan, with fingerprints of what it depends on, to this file");
  exec->add_option("--plan", plan_path, "execute this saved plan, only if what it depended on still holds (at most once)");
  std::string wait_lock;
  exec->add_option("--wait-lock", wait_lock, "when another live run holds this runbook's lock, wait for it this long (like 5m) instead of refusing at once (exit 4)");
  add_common(exec, true);
  exec->footer(kExitStatusHelp);

  auto* check = app.add_subcommand("check", "load a runbook and show its parameters and steps, running nothing");
  check->add_option("file", file, "the runbook (.lua)")->required();
  check->add_flag("--json", c.json, "one JSON object (type \"check\"): parameters, steps, lint warnings");

  std::vector<std::string> lint_targets;
  auto* lint = app.add_subcommand("lint", "check runbooks without running them: file:line:col: severity: message; exit 1 on an error");
  lint->add_option("files", lint_targets, "runbooks and their modules (.lua)")->required();

  auto* runs = app.add_subcommand("runs", "list the journal's runs, newest first");
  runs->add_option("--runbook", runbook_filter, "only runs of this runbook");
  runs->add_option("--limit", limit, "how many");
  add_common(runs, true);

  auto* locks = app.add_subcommand("locks", "the run locks held now: which live run holds which target, and which are stale");
  add_common(locks, true);

  auto* show = app.add_subcommand("show", "one run's steps, effects and results");
  show->add_option("run", run_id, "run id, or 'last'")->required();
  add_common(show, true);

  std::string against;
  ResumeFlags rf;
  auto* replay = app.add_subcommand("replay", "run a journaled run again with every effect answered from the journal: nothing is performed");
  replay->add_option("run", run_id, "run id, or 'last'")->required();
  replay->add_option("--against", against, "replay this (changed) file against the journal and show where it departs");
  replay->add_flag("--verbose,-v", verbose, "show each effect's result");
  add_common(replay, true);

  auto* resume = app.add_subcommand("resume", "continue a failed or crashed live run: what completed is answered from the journal, the rest is performed");
  resume->add_option("run", run_id, "run id, or 'last'")->required();
  resume->add_flag("--assume-done", rf.assume_done, "a change in doubt (begun, never finished) took place: go on after it");
  resume->add_flag("--redo", rf.redo, "a change in doubt did not take place: perform it again");
  resume->add_flag("--allow-param-change", rf.allow_param_change, "resume with parameters other than the original's (journaled)");
  resume->add_option("--param,-p", rf.params, "a parameter, name=value: secret ones must be given again (or --param-file, RUNBOOK_PARAM_<NAME>, the prompt)")->take_all();
  resume->add_option("--param-file", rf.param_file, "the secrets (and changed parameters) from this file, name=value lines: yours, mode 600");
  resume->add_flag("--yes,-y", rf.yes, "answer yes to every confirm()");
  resume->add_flag("--verbose,-v", verbose, "show each effect's result");
  resume->add_option("--wait-lock", rf.wait_lock, "when another live run holds the lock, wait for it this long instead of refusing at once (exit 4)");
  add_common(resume, true);

  std::string format = "md", out_file, since;
  auto* report = app.add_subcommand("report", "the incident record of a run (and of the runs that resumed it): who, what, when, what failed, what changed");
  report->add_option("run", run_id, "run id, or 'last'")->required();
  report->add_option("--format", format, "md (default), json, or html (one self-contained page with a timeline chart)");
  report->add_option("-o,--output", out_file, "write to this file instead of standard output");
  add_common(report, false);

  auto* stats = app.add_subcommand("stats", "runs per runbook, outcomes, mean and worst time to recover, causes");
  stats->add_option("--since", since, "only runs since: a duration (7d, 12h) or a date (2026-11-01)");
  std::string stats_format;
  stats->add_option("--format", stats_format, "text (default), json (as --json), or openmetrics (for node_exporter's textfile collector)");
  add_common(stats, true);

  bool luals = false;
  auto* api = app.add_subcommand("api", "the reference of every primitive, global and stdlib module");
  api->add_flag("--markdown", markdown, "as Markdown (docs/api.md)");
  api->add_flag("--json", c.json, "as JSON");
  api->add_flag("--luals", luals, "as a lua-language-server annotation file (---@meta)");
  bool luacheckrc = false;
  api->add_flag("--luacheckrc", luacheckrc, "as a .luacheckrc whose std is the sandbox's globals");

  std::string init_name;
  auto* init = app.add_subcommand("init", "scaffold NAME.lua, NAME_test.lua, .luarc.json and .luacheckrc here");
  init->add_option("name", init_name, "the runbook's name (letters, digits, _ and -)")->required();

  auto* config_cmd = app.add_subcommand("config", "the settings in effect (config.toml, environment, defaults) and where each came from");
  config_cmd->add_flag("--json", c.json, "one JSON object (type \"config\")");

  TestFlags tf;
  auto* test = app.add_subcommand("test", "run *_test.lua files: cases that run runbooks with their effects faked (nothing touches the world)");
  test->add_option("paths", tf.paths, "test files, or directories searched for *_test.lua");
  test->add_option("--junit", tf.junit, "also write JUnit XML to this file (for CI)");
  test->add_flag("--json", tf.json, "one JSON event per line");
  test->add_option("--timeout", tf.timeout, "each case's time limit (default 60s)");
  test->add_option("--from-run", tf.from_run, "write a test file from this journaled run (id or 'last') instead");
  test->add_option("-o,--output", tf.output, "with --from-run: the file to write (default: standard output)");
  test->add_option("--journal", tf.journal_path, "with --from-run: the journal (default $RUNBOOK_JOURNAL, else $XDG_STATE_HOME/runbook/journal.db)");

  // Generated from the definitions above (engine/cli/cli_docs.cc), so they cannot drift from --help.
  std::string shell, complete_what, complete_arg;
  auto* completion = app.add_subcommand("completion", "print the completion script for a shell: source <(runbook completion bash), or install it where the shell looks");
  completion->add_option("shell", shell, "bash, zsh or fish")->required();
  auto* man = app.add_subcommand("man", "print the runbook(1) manual page (roff): runbook man | man -l -");
  // Hidden (no group): what the completion scripts ask, silent on every error.
  auto* complete = app.add_subcommand("__complete", "")->group("");
  complete->add_option("what", complete_what, "runs, or params FILE")->required();
  complete->add_option("arg", complete_arg);
  complete->add_option("--journal", c.journal_path);

  if (int rc = check_command_word(app, argc, argv); rc >= 0) return rc;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  // config.toml, then the environment, then the flags: what each command uses.
  Config cfg;
  // The completion scripts' questions, the scripts and the man page do not read it: a broken
  // file must not make Tab print errors.
  bool quiet_config = *complete || *completion || *man;
  try {
    if (quiet_config) ::setenv("RUNBOOK_CONFIG", "none", 1);
    cfg = load_config();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "runbook: %s\n", e.what());
    if (c.json || tf.json) print_event(json{{"event", "error"}, {"error", e.what()}, {"exit_code", kExitUsage}});
    return kExitUsage;
  }
  for (const auto& w : cfg.warnings) std::fprintf(stderr, "runbook: %s\n", w.c_str());
  apply_flag(cfg, "journal", !c.journal_path.empty() ? c.journal_path : tf.journal_path, "--journal");
  apply_flag(cfg, "wait_lock", !wait_lock.empty() ? wait_lock : rf.wait_lock, "--wait-lock");
  if (c.no_color) apply_flag(cfg, "color", "never", "--no-color");
  install_settings(cfg);
  if (cfg.values["journal"].source != "default") {
    if (c.journal_path.empty()) c.journal_path = cfg.values["journal"].value;
    if (tf.journal_path.empty()) tf.journal_path = cfg.values["journal"].value;
  }
  if (cfg.values["wait_lock"].source != "default") {
    if (wait_lock.empty()) wait_lock = cfg.values["wait_lock"].value;
    if (rf.wait_lock.empty()) rf.wait_lock = cfg.values["wait_lock"].value;
  }
  try {
    if (*config_cmd) return cmd_config(cfg, c.json);
    if (*exec) return cmd_exec(c, file, dry, offline, params, param_file, yes, verbose, save_plan_path, plan_path, wait_lock);
    if (*locks) return cmd_locks(c);
    if (*check) return cmd_check(file, c.json);
    if (*lint) return cmd_lint(lint_targets);
    if (*runs) return cmd_runs(c, runbook_filter, limit);
    if (*show) return cmd_show(c, run_id);
    HistoryCommon hc{c.journal_path, c.json, c.no_color, verbose};
    if (*replay) return cmd_replay(hc, run_id, against);
    if (*resume) return cmd_resume(hc, run_id, rf);
    if (*report) return cmd_report(hc, run_id, format, out_file);
    if (*stats) return cmd_stats(hc, since, stats_format);
    if (*test) return cmd_test(tf);
    if (*init) return cmd_init(init_name);
    if (*completion) return std::fputs(completion_script(app, shell).c_str(), stdout) < 0 ? kExitFailed : kExitOk;
    if (*man) return std::fputs(man_page(app, RUNBOOK_VERSION).c_str(), stdout) < 0 ? kExitFailed : kExitOk;
    if (*complete) {
      if (complete_what == "runs") return complete_runs(journal_path(c));
      if (complete_what == "params") return complete_params(complete_arg);
      return kExitOk;
    }
    if (*api) {
      const auto& r = builtin_registry();
      if (int(c.json) + int(markdown) + int(luals) + int(luacheckrc) > 1)
        throw UsageError("api: one of --json, --markdown, --luals, --luacheckrc");
      if (luacheckrc) {
        std::fputs(luacheck_rc().c_str(), stdout);
      } else if (c.json) {
        json a = api_json(r);
        print_typed("api", a.is_array() ? json{{"entries", a}} : a);
      } else {
        std::fputs((luals ? api_luals(r) : markdown ? api_markdown(r) : api_text(r)).c_str(), stdout);
      }
      return 0;
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "runbook: %s\n", e.what());
    // A --json reader learns of it on its own stream too.
    if (c.json || tf.json) print_event(json{{"event", "error"}, {"error", e.what()}, {"exit_code", kExitUsage}});
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runbook: %s\n", e.what());
    if (c.json || tf.json) print_event(json{{"event", "error"}, {"error", e.what()}, {"exit_code", kExitFailed}});
    return kExitFailed;
  }
  return kExitUsage;
}

}  // namespace rb::cli
