// report RUN: the incident record the source procedures ask people to fill in by hand (the
// rollback log entry, the post-mortem timeline), written from the journal instead. stats: what
// rollback_metrics.py kept in a JSON file — runs per runbook, outcomes, time to recover, causes.
//
// A run that was resumed is one incident with the runs that continued it: the report and the
// recovery time cover the whole chain, from the first run's start to the last run's end.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <set>
#include <unordered_map>
#include <string_view>

#include "cli/commands.h"
#include "cli/history.h"
#include "cli/json_out.h"
#include "cli/report_html.h"
#include "cli/reporter.h"
#include "cli/terminal.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/error.h"
#include "core/strings.h"
#include "dispatch/dispatcher.h"
#include "lua/runbook.h"

namespace rb::cli {
namespace {

// The runs of one incident: the first run, then each run that resumed the previous one.
std::vector<RunRecord> chain_of(Journal& j, int64_t id) {
  RunRecord r = *j.run(id);
  for (int guard = 0; guard < 1000 && r.mode == "resume" && r.parent_id; ++guard) {
    auto p = j.run(r.parent_id);
    if (!p) break;
    r = *p;
  }
  std::vector<RunRecord> out{r};
  for (int guard = 0; guard < 1000 && out.back().resumed_by; ++guard) {
    auto n = j.run(out.back().resumed_by);
    if (!n) break;
    out.push_back(*n);
  }
  for (auto& run : out) show_crashed(run);
  return out;
}

std::string outcome_word(const std::string& o) {
  if (o == "running") return "running (or its process died)";
  return o;
}

// A path the effect left behind as a backup (fs.backup's result, a replaced file kept as an
// artifact, a dump), or "".
std::vector<std::pair<std::string, std::string>> backups_of(const EffectRecord& e) {
  std::vector<std::pair<std::string, std::string>> out;
  bool backupish = e.name.find("backup") != std::string::npos ||
                   e.name.find("dump") != std::string::npos ||
                   e.name.find("snapshot") != std::string::npos;
  if (backupish && e.result.is_string()) out.emplace_back("backup", e.result.get<std::string>());
  if (!e.result.is_object()) return out;
  if (backupish && e.result.contains("path") && e.result["path"].is_string())
    out.emplace_back("backup", e.result["path"].get<std::string>());
  auto text = [&](const char* key) -> std::string {
    if (!e.result.contains(key)) return "";
    const json& v = e.result[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("ref") && v["ref"].is_string()) return v["ref"].get<std::string>();
    return "";
  };
  // "previous" is a file kept as an artifact (fs.write) or, for git, the commit it moved from.
  for (const char* key : {"backup", "backup_ref", "previous", "moved_to", "saved_to", "snapshot", "dump", "stash"}) {
    std::string v = text(key);
    if (v.empty() || (std::string(key) == "previous" && v.front() != '/')) continue;
    if (std::string(key) == "previous" && e.result[key].is_object()) continue;
    out.emplace_back(key, v);
  }
  return out;
}

bool is_commitish(const json& v) {
  return v.is_string() && is_lower_hex(v.get<std::string>(), 7, 40);
}

json request_of(const EffectRecord& e) {
  std::string method = e.args.value("method", std::string());
  if (method.empty()) {
    method = e.name.substr(e.name.find('.') + 1);
    for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  json r{{"run", e.run_id}, {"effect", e.seq}, {"method", method},
         {"url", e.args.value("url", std::string())}, {"state", e.state}};
  if (e.result.is_object() && e.result.contains("status")) r["status"] = e.result["status"];
  if (!e.error.empty()) r["error"] = e.error;
  return r;
}

}  // namespace

json report_json(Journal& j, int64_t run_id) {
  auto chain = chain_of(j, run_id);
  const RunRecord& first = chain.front();
  const RunRecord& last = chain.back();
  json rep;
  rep["title"] = "Incident record: " + first.runbook + " " + first.version;
  rep["runbook"] = {{"name", first.runbook}, {"version", first.version}, {"file", first.file},
                    {"sha256", first.sha256}, {"modules", first.modules}};
  if (!first.git_commit.empty())
    rep["runbook"]["git"] = {{"commit", first.git_commit},
                             {"modified", first.git_dirty},
                             {"status", first.extra.contains("git")
                                            ? first.extra["git"].value("status", "")
                                            : std::string(first.git_dirty ? "modified" : "clean")}};
  rep["who"] = {{"user", first.user}, {"host", first.host}, {"cwd", first.cwd}};
  rep["mode"] = first.mode + (first.offline ? " (offline)" : "");
  rep["started"] = iso_utc(first.started_ms);
  rep["ended"] = last.ended_ms ? json(iso_utc(last.ended_ms)) : json(nullptr);
  rep["outcome"] = last.outcome;
  rep["exit_code"] = last.exit_code;
  // Total recovery time: from the first run's start to the end of the run that finished it.
  rep["recovery_ms"] = last.ended_ms ? json(last.ended_ms - first.started_ms) : json(nullptr);
  rep["params"] = first.params;
  json changes_of_params = json::object();
  for (const auto& r : chain)
    if (r.extra.contains("param_changes"))
      for (auto it = r.extra["param_changes"].begin(); it != r.extra["param_changes"].end(); ++it)
        changes_of_params[it.key()] = {{"run", r.id}, {"from", it.value()["from"]}, {"to", it.value()["to"]}};
  if (!changes_of_params.empty()) rep["param_changes"] = changes_of_params;
  for (const char* k : {"reason", "trigger", "incident", "ticket", "cause"})
    if (first.params.contains(k)) {
      rep["trigger"] = first.params[k];
      break;
    }

  rep["runs"] = json::array();
  rep["timeline"] = json::array();
  rep["failures"] = json::array();
  rep["changes"] = json::array();
  rep["backups"] = json::array();
  rep["commits"] = json::array();
  rep["requests"] = json::array();
  int64_t t0 = first.started_ms;
  auto at = [&](int64_t ms) { return json{{"at", iso_utc(ms)}, {"elapsed_ms", ms - t0}}; };
  for (const auto& r : chain) {
    rep["runs"].push_back({{"id", r.id}, {"mode", r.mode}, {"outcome", r.outcome},
                           {"started", iso_utc(r.started_ms)},
                           {"duration_ms", r.ended_ms ? r.ended_ms - r.started_ms : 0},
                           {"exit_code", r.exit_code}, {"error", r.error}, {"user", r.user},
                           {"host", r.host}, {"parent_id", r.parent_id}, {"plan_id", r.plan_id}});
    auto steps = j.steps(r.id);
    auto effects = j.effects(r.id);
    auto logs = j.logs(r.id);
    json ev = at(r.started_ms);
    ev["type"] = "run";
    ev["run"] = r.id;
    ev["text"] = r.mode == "resume" ? "run #" + std::to_string(r.id) + " resumes run #" +
                                          std::to_string(r.parent_id)
                                    : "run #" + std::to_string(r.id) + " began (" + r.mode + ")";
    rep["timeline"].push_back(ev);
    // A continuation's answered prefix is already in the earlier run's timeline.
    int64_t answered_from = 0, answered_to = 0;
    for (const auto& e : effects)
      if (e.origin == "journal") {
        if (!answered_from) answered_from = e.seq;
        answered_to = e.seq;
      }
    if (answered_to) {
      json a = at(r.started_ms);
      a["type"] = "note";
      a["run"] = r.id;
      a["text"] = "effects #" + std::to_string(answered_from) + "–#" + std::to_string(answered_to) +
                  " answered from the journal (done before), not performed again";
      rep["timeline"].push_back(a);
    }
    size_t li = 0;
    std::set<int> skipped_steps;
    int64_t last_seen = r.started_ms;
    for (const auto& e : effects) last_seen = std::max({last_seen, e.started_ms, e.ended_ms});
    for (const auto& s : steps) last_seen = std::max({last_seen, s.started_ms, s.ended_ms});
    for (const auto& l : logs) last_seen = std::max(last_seen, l.at_ms);
    auto push_log = [&](const LogRecord& lr) {
      if (lr.level == "debug" || skipped_steps.count(lr.step_idx)) return;
      json l = at(lr.at_ms);
      l["type"] = "log";
      l["run"] = r.id;
      l["level"] = lr.level;
      l["text"] = lr.message;
      rep["timeline"].push_back(l);
    };
    for (const auto& s : steps) {
      bool any_own = false;
      for (const auto& e : effects)
        if (e.step_idx == s.idx && e.attempt == s.attempt && e.origin != "journal") any_own = true;
      bool all_answered = !any_own;
      for (const auto& e : effects)
        if (e.step_idx == s.idx && e.attempt == s.attempt) all_answered = all_answered && e.origin == "journal";
      if (r.mode == "resume" && all_answered && s.outcome == "succeeded") {
        skipped_steps.insert(s.idx);
        continue;
      }
      // Log lines an earlier step wrote after its last effect belong before this step's header.
      while (li < logs.size() && logs[li].step_idx < s.idx) push_log(logs[li++]);
      json st = at(s.started_ms);
      st["type"] = "step";
      st["run"] = r.id;
      st["step"] = s.idx;
      st["attempt"] = s.attempt;
      st["name"] = s.name;
      st["outcome"] = s.outcome;
      st["duration_ms"] = s.ended_ms ? s.ended_ms - s.started_ms : 0;
      if (!s.error.empty()) st["error"] = s.error;
      rep["timeline"].push_back(st);
      for (const auto& e : effects) {
        if (e.step_idx != s.idx || e.attempt != s.attempt || e.origin == "journal") continue;
        while (li < logs.size() && logs[li].seq < e.seq) push_log(logs[li++]);
        json x = at(e.started_ms);
        x["type"] = "effect";
        x["run"] = r.id;
        x["step"] = e.step_idx;
        x["effect"] = e.seq;
        x["name"] = e.name;
        x["kind"] = e.kind;
        x["describe"] = e.describe;
        x["state"] = e.state;
        x["duration_ms"] = e.ended_ms ? e.ended_ms - e.started_ms : 0;
        x["site"] = e.site;
        if (!e.origin.empty()) x["origin"] = e.origin;
        if (!e.error.empty()) x["error"] = e.error;
        rep["timeline"].push_back(x);
        // An assessment the runbook made (report.trigger) is the trigger the record shows; the
        // operator's own words (a reason parameter) stay in the parameters.
        if (e.name == "report.trigger" && e.state == "done" && e.result.is_object() &&
            e.result.contains("text") && e.result["text"].is_string()) {
          rep["assessment"] = e.result;
          rep["assessment"]["run"] = r.id;
          rep["trigger"] = e.result["text"];
        }

        bool performed = e.state == "done" && e.kind == "change";
        if (performed) {
          rep["changes"].push_back({{"run", r.id}, {"effect", e.seq}, {"name", e.name},
                                    {"describe", e.describe}, {"at", iso_utc(e.started_ms)},
                                    {"how", e.origin.empty() ? "performed" : e.origin}});
          for (const auto& [what, path] : backups_of(e))
            rep["backups"].push_back({{"run", r.id}, {"effect", e.seq}, {"name", e.name},
                                      {"what", what}, {"path", path}, {"describe", e.describe}});
          if (e.name.rfind("git.", 0) == 0) {
            json c{{"run", r.id}, {"effect", e.seq}, {"name", e.name}, {"describe", e.describe}};
            if (e.result.is_object()) {
              for (auto it = e.result.begin(); it != e.result.end(); ++it)
                if (is_commitish(it.value())) c[it.key()] = it.value();
              // Where HEAD (or the ref) was before: { commit, short } in git's results.
              if (e.result.contains("previous") && e.result["previous"].is_object() &&
                  is_commitish(e.result["previous"].value("commit", json())))
                c["previous"] = e.result["previous"]["commit"];
            }
            rep["commits"].push_back(c);
          }
        }
        if (e.kind == "change" && e.name.rfind("http.", 0) == 0 &&
            (e.state == "done" || e.state == "failed"))
          rep["requests"].push_back(request_of(e));
        if (e.state == "begun")
          rep["failures"].push_back({{"run", r.id}, {"step", e.step_idx}, {"effect", e.seq},
                                     {"name", e.name}, {"describe", e.describe}, {"site", e.site},
                                     {"error", "began and never finished: the process died (in doubt)"}});
      }
    }
    while (li < logs.size()) push_log(logs[li++]);
    // What failed and why: the step attempts that ended the run badly, with their failing effect.
    ResumePoint wrong = resume_point(steps, effects);
    for (const auto& s : steps) {
      if (s.outcome == "succeeded" || s.outcome == "running") continue;
      json f{{"run", r.id}, {"step", s.idx}, {"step_name", s.name}, {"attempt", s.attempt},
             {"outcome", s.outcome}, {"error", s.error}, {"at", iso_utc(s.ended_ms ? s.ended_ms : s.started_ms)}};
      for (const auto& e : effects)
        if (e.step_idx == s.idx && e.attempt == s.attempt && e.state == "failed")
          f["effect"] = {{"seq", e.seq}, {"name", e.name}, {"describe", e.describe},
                         {"error", e.error}, {"site", e.site}};
      f["retried"] = !(s.idx == wrong.step && s.attempt == wrong.attempt) &&
                     std::any_of(steps.begin(), steps.end(), [&](const StepRecord& o) {
                       return o.idx == s.idx && o.attempt > s.attempt;
                     });
      rep["failures"].push_back(f);
    }
    if (r.outcome == "crashed" || (r.outcome == "running" && !r.ended_ms))
      rep["failures"].push_back({{"run", r.id}, {"outcome", r.outcome},
                                 {"error", r.error.empty() ? "the process ended without finishing the run" : r.error}});
    // A run whose process died has no end: its last trace in the journal stands for it.
    json end = at(r.ended_ms ? r.ended_ms : last_seen);
    end["type"] = "run_end";
    end["run"] = r.id;
    end["text"] = "run #" + std::to_string(r.id) + " " + outcome_word(r.outcome) +
                  (r.ended_ms ? " after " + format_duration(Millis(r.ended_ms - r.started_ms))
                              : ", last seen in the journal at " + iso_utc(last_seen).substr(11, 12));
    rep["timeline"].push_back(end);
  }
  rep["verification"] = last.outcome == "succeeded" ? "success"
                        : rep["changes"].empty()     ? "failed"
                                                     : "partial";
  return rep;
}

namespace {

std::string cell(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return truncate(out, 300);
}

std::string val(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string dur(const json& ms) {
  return ms.is_number() && ms.get<int64_t>() > 0 ? format_duration(Millis(ms.get<int64_t>())) : "";
}

}  // namespace

std::string report_markdown(const json& r) {
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  const json& rb = r["runbook"];
  line("# " + r["title"].get<std::string>() + " — " + r["outcome"].get<std::string>());
  line("");
  // The rollback log entry of the source procedures, filled in.
  line("```");
  line("[" + r["started"].get<std::string>() + "] ROLLBACK INITIATED");
  line("Runbook: " + val(rb["name"]) + " " + val(rb["version"]));
  line("Trigger: " + (r.contains("trigger") ? val(r["trigger"]) : std::string("(not given)")));
  line("Method: runbook " + val(r["mode"]) + " run" + (r["runs"].size() > 1 ? "s #" : " #") +
       [&] {
         std::string ids;
         for (const auto& x : r["runs"]) ids += (ids.empty() ? "" : ", #") + std::to_string(x["id"].get<int64_t>());
         return ids;
       }());
  line("Duration: " + (r["recovery_ms"].is_null() ? std::string("(not finished)") : format_duration(Millis(r["recovery_ms"].get<int64_t>()))));
  line("Verification: " + val(r["verification"]));
  line("```");
  line("");
  line("## Summary");
  line("");
  line("| | |");
  line("|---|---|");
  line("| Runbook | " + cell(val(rb["name"]) + " " + val(rb["version"])) + " |");
  line("| File | `" + cell(val(rb["file"])) + "` |");
  line("| SHA-256 | `" + val(rb["sha256"]) + "` |");
  if (rb.contains("git"))
    line("| Git | `" + val(rb["git"]["commit"]) + "` (" +
         (rb["git"]["modified"].get<bool>() ? "file " + val(rb["git"]["status"]) : std::string("file as committed")) + ") |");
  for (auto it = rb["modules"].begin(); it != rb["modules"].end(); ++it)
    line("| Module | " + cell(it.key()) + " `" + val(it.value()) + "` |");
  line("| Run by | " + cell(val(r["who"]["user"])) + " on " + cell(val(r["who"]["host"])) + ", in `" + cell(val(r["who"]["cwd"])) + "` |");
  line("| Mode | " + cell(val(r["mode"])) + " |");
  line("| Started | " + val(r["started"]) + " |");
  line("| Ended | " + (r["ended"].is_null() ? std::string("(not finished)") : val(r["ended"])) + " |");
  line("| Total recovery time | " + (r["recovery_ms"].is_null() ? std::string("(not finished)") : format_duration(Millis(r["recovery_ms"].get<int64_t>()))) + " |");
  line("| Outcome | " + cell(val(r["outcome"])) + " (exit " + val(r["exit_code"]) + ") |");
  line("");
  if (r.contains("assessment") && r["assessment"].is_object()) {
    const json& a = r["assessment"];
    line("## Assessment");
    line("");
    line("**" + cell(val(a["level"])) + "**" + (a["decision"].is_string() ? " — " + cell(val(a["decision"])) : std::string()));
    line("");
    if (a["reasons"].is_array())
      for (const auto& x : a["reasons"]) line("- " + cell(val(x)));
    if (a["measures"].is_object() && !a["measures"].empty()) {
      line("");
      line("| measure | value |");
      line("|---|---|");
      for (auto it = a["measures"].begin(); it != a["measures"].end(); ++it)
        line("| " + cell(it.key()) + " | " + cell(val(it.value())) + " |");
    }
    line("");
  }
  line("## Parameters");
  line("");
  if (r["params"].empty()) line("(none)");
  for (auto it = r["params"].begin(); it != r["params"].end(); ++it)
    line("- `" + it.key() + "` = `" + cell(val(it.value())) + "`");
  if (r.contains("param_changes"))
    for (auto it = r["param_changes"].begin(); it != r["param_changes"].end(); ++it)
      line("- `" + it.key() + "` changed by run #" + val(it.value()["run"]) + ": `" +
           cell(val(it.value()["from"])) + "` → `" + cell(val(it.value()["to"])) + "`");
  line("");
  line("## Timeline");
  line("");
  line("| Time (UTC) | Elapsed | Run | Event | Duration |");
  line("|---|---|---|---|---|");
  for (const auto& e : r["timeline"]) {
    std::string type = e["type"];
    std::string what;
    if (type == "step")
      what = "**Step " + val(e["step"]) + " " + cell(val(e["name"])) + "**" +
             (e["attempt"].get<int>() > 1 ? " (attempt " + val(e["attempt"]) + ")" : "") + " — " +
             val(e["outcome"]) + (e.contains("error") ? ": " + cell(val(e["error"])) : "");
    else if (type == "effect") {
      std::string mark = e["state"] == "done" ? "✓" : e["state"] == "failed" ? "✗" : e["state"] == "planned" ? "~" : "?";
      what = mark + " `" + val(e["name"]) + "` " + cell(val(e["describe"]));
      if (e.contains("origin")) what += " *(" + val(e["origin"]) + ")*";
      if (e.contains("error")) what += " — " + cell(val(e["error"]));
      if (e["state"] == "begun") what += " — began, never finished";
    } else if (type == "log")
      what = (e["level"] == "info" ? "· " : "! ") + cell(val(e["text"]));
    else
      what = "*" + cell(val(e["text"])) + "*";
    std::string elapsed = "+" + format_duration(Millis(e["elapsed_ms"].get<int64_t>()));
    line("| " + val(e["at"]).substr(11, 12) + " | " + elapsed + " | #" + val(e["run"]) + " | " + what + " | " +
         (type == "step" || type == "effect" ? dur(e["duration_ms"]) : "") + " |");
  }
  line("");
  line("## What failed and why");
  line("");
  if (r["failures"].empty()) line("Nothing failed.");
  for (const auto& f : r["failures"]) {
    std::string s = "- Run #" + val(f["run"]);
    if (f.contains("step_name"))
      s += ", step " + val(f["step"]) + " '" + val(f["step_name"]) + "'" +
           (f["attempt"].get<int>() > 1 ? " (attempt " + val(f["attempt"]) + ")" : "") + ", " +
           val(f["outcome"]) + (f.value("retried", false) ? " (retried)" : "");
    else if (f.contains("effect"))
      s += ", effect #" + val(f["effect"]) + " `" + val(f["name"]) + "` (" + cell(val(f["describe"])) + ")";
    s += ": " + cell(val(f["error"]));
    if (f.contains("effect") && f["effect"].is_object())
      s += " — at `" + val(f["effect"]["site"]) + "`, " + val(f["effect"]["name"]);
    line(s);
  }
  line("");
  line("## What was changed");
  line("");
  auto section = [&](const char* title, const json& list, auto render) {
    line(std::string("### ") + title);
    line("");
    if (list.empty()) line("(none)");
    for (const auto& x : list) line("- " + render(x));
    line("");
  };
  section("Backups made", r["backups"], [](const json& b) {
    return "`" + cell(val(b["path"])) + "` (" + val(b["what"]) + ", from " + val(b["name"]) + " #" + val(b["effect"]) + ": " + cell(val(b["describe"])) + ")";
  });
  section("Commits moved", r["commits"], [](const json& c) {
    std::string s = "`" + val(c["name"]) + "` " + cell(val(c["describe"]));
    auto shortened = [](const json& v) { return val(v).substr(0, 12); };
    if (c.contains("previous") && c.contains("commit"))
      s += ": `" + shortened(c["previous"]) + "` → `" + shortened(c["commit"]) + "`";
    else if (c.contains("commit"))
      s += ": at `" + shortened(c["commit"]) + "`";
    return s;
  });
  section("Requests sent", r["requests"], [](const json& q) {
    return val(q["method"]) + " " + cell(val(q["url"])) + " → " +
           (q.contains("status") ? val(q["status"]) : std::string("no answer")) +
           (q.contains("error") ? " (" + cell(val(q["error"])) + ")" : "");
  });
  section("All changes, in order", r["changes"], [](const json& c) {
    return val(c["at"]).substr(11, 8) + " run #" + val(c["run"]) + " #" + val(c["effect"]) + " `" +
           val(c["name"]) + "` " + cell(val(c["describe"])) + (c["how"] == "performed" ? "" : " *(" + val(c["how"]) + ")*");
  });
  line("## Runs");
  line("");
  line("| Run | Mode | Outcome | Started (UTC) | Took | By |");
  line("|---|---|---|---|---|---|");
  for (const auto& x : r["runs"])
    line("| #" + val(x["id"]) + " | " + val(x["mode"]) + " | " + val(x["outcome"]) + " | " +
         val(x["started"]).substr(0, 19) + " | " + dur(x["duration_ms"]) + " | " + cell(val(x["user"])) + "@" + cell(val(x["host"])) + " |");
  return md;
}

int cmd_report(const HistoryCommon& c, const std::string& run_text, const std::string& format,
               const std::string& out_file) {
  if (format != "md" && format != "json" && format != "html")
    throw UsageError("--format is md, json or html, not '" + format + "'");
  Journal j(journal_path_of(c));
  int64_t id = resolve_run_id(j, run_text);
  json rep = report_json(j, id);
  std::string text = format == "json"   ? rep.dump(2, ' ', false, json::error_handler_t::replace) + "\n"
                     : format == "html" ? report_html(rep)
                                        : report_markdown(rep);
  if (out_file.empty() || out_file == "-") {
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  std::ofstream out(out_file, std::ios::binary | std::ios::trunc);
  if (!out) throw UsageError("cannot write " + out_file);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("writing " + out_file + " failed");
  std::fprintf(stderr, "report of run #%lld written to %s\n", static_cast<long long>(id), out_file.c_str());
  return kExitOk;
}

namespace {

constexpr int64_t kMaxSinceDays = 36'500;  // a century: the journal holds nothing older

// "2026-11-01", "2026-11-01T10:00", "2026-11-01 10:00:00Z" (UTC) -> epoch ms. Checked by hand,
// field by field: the text is unbounded user input.
std::optional<int64_t> date_ms(std::string_view t) {
  size_t i = 0;
  bool ok = true;
  auto digits = [&](size_t n) {
    int v = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (i >= t.size() || t[i] < '0' || t[i] > '9') return ok = false, 0;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto lit = [&](char c) { return i < t.size() && t[i] == c ? (++i, true) : false; };
  struct tm tm {};
  int year = digits(4);
  ok = ok && lit('-');
  int mon = digits(2);
  ok = ok && lit('-');
  int day = digits(2);
  int hour = 0, min = 0, sec = 0;
  if (ok && i < t.size() && (t[i] == 'T' || t[i] == ' ')) {
    ++i;
    hour = digits(2);
    ok = ok && lit(':');
    min = digits(2);
    if (ok && lit(':')) sec = digits(2);
    if (ok) lit('Z');
  }
  if (!ok || i != t.size()) return std::nullopt;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
      (mon == 2 && day == 29 && !leap) || hour > 23 || min > 59 || sec > 60)
    return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// "7d", "12h", "30m" (that long ago), or a date "2026-11-01" / "2026-11-01T10:00:00Z" (UTC).
int64_t since_ms(const std::string& text) {
  if (text.empty()) return 0;
  auto shown = [&] { return truncate(text, 40); };
  if (text.size() > 1 && text.back() == 'd') {
    std::string_view n(text.data(), text.size() - 1);
    bool all_digits = std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (all_digits) {
      auto days = n.size() <= 18 ? parse_int(n) : std::nullopt;
      if (!days || *days > kMaxSinceDays)
        throw UsageError("--since " + shown() + " is out of range (at most " +
                         std::to_string(kMaxSinceDays) + "d)");
      return now_epoch_ms() - *days * 86'400'000LL;
    }
  }
  if (auto d = parse_duration(text)) return now_epoch_ms() - d->count();
  if (auto ms = date_ms(text)) return *ms;
  throw UsageError("--since takes a duration like 7d or 12h, or a date like 2026-11-01, not '" +
                   shown() + "'");
}

// The cause of a run that went wrong: the failing effect of the step attempt where it did.
std::string cause_of(const RunBrief& r, const RunOutline* o) {
  if (r.outcome == "error") return "(runbook or parameter error)";
  if (o) {
    ResumePoint p = resume_point(o->steps, o->effects);
    for (const auto& e : o->effects)
      if (e.step_idx == p.step && e.attempt == p.attempt && e.state == "failed" && e.origin != "journal")
        return e.name;
    if (p.in_doubt_seq)
      for (const auto& e : o->effects)
        if (e.seq == p.in_doubt_seq) return e.name + " (process died)";
  }
  if (r.outcome == "interrupted") return "(interrupted)";
  if (r.outcome == "crashed" || r.outcome == "running") return "(process died)";
  return "(runbook code)";
}

// Label values of the OpenMetrics text format: backslash, double quote and newline escaped.
std::string om_label(const std::string& v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

std::string om_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos && s.find("inf") == std::string::npos &&
      s.find("nan") == std::string::npos)
    s += ".0";
  return s;
}

}  // namespace

int cmd_stats(const HistoryCommon& c, const std::string& since, const std::string& format_in) {
  std::string format = c.json && format_in.empty() ? "json" : format_in.empty() ? "text" : format_in;
  if (format != "text" && format != "json" && format != "openmetrics")
    throw UsageError("--format is text, json or openmetrics, not '" + truncate(format, 40) + "'");
  Journal j(journal_path_of(c));
  RunFilter f;
  f.since_ms = since_ms(since);
  // Two queries, whatever the journal's size: the runs (no JSON columns), and the steps and
  // effects of those that did not succeed (for their causes).
  auto runs = j.run_briefs(f.since_ms);
  auto outlines = j.outlines_not_succeeded(f.since_ms);
  std::unordered_map<int64_t, const RunBrief*> by_id;
  by_id.reserve(runs.size());
  for (const auto& r : runs) by_id[r.id] = &r;

  struct Book {
    int64_t runs = 0;
    std::map<std::string, int64_t> modes, outcomes, causes;
    std::map<std::pair<std::string, std::string>, int64_t> mode_outcome;
    int64_t recoveries = 0, recovered = 0, total_ms = 0, worst_ms = 0, worst_run = 0;
    std::vector<int64_t> recovery_ms;
    int64_t last_ms = 0, last_success_ms = 0;
    std::string last_outcome;
  };
  std::map<std::string, Book> books;
  std::map<std::string, int64_t> causes;
  int64_t recoveries = 0, recovered = 0, total_ms = 0;
  for (const auto& r : runs) {
    Book& b = books[r.runbook];
    ++b.runs;
    ++b.modes[r.mode];
    ++b.outcomes[r.outcome];
    ++b.mode_outcome[{r.mode, r.outcome}];
    if (r.started_ms >= b.last_ms) {
      b.last_ms = r.started_ms;
      b.last_outcome = r.outcome;
    }
    if (r.outcome == "succeeded") b.last_success_ms = std::max(b.last_success_ms, r.ended_ms);
    if (r.outcome != "succeeded") {
      auto it = outlines.find(r.id);
      std::string cause = cause_of(r, it == outlines.end() ? nullptr : &it->second);
      ++b.causes[cause];
      ++causes[cause];
    }
    // A recovery is a live run with the runs that resumed it; it counts once, at its first run.
    if (r.mode != "live") continue;
    const RunBrief* last = &r;
    for (int guard = 0; guard < 1000 && last->resumed_by && by_id.count(last->resumed_by); ++guard)
      last = by_id[last->resumed_by];
    ++b.recoveries;
    ++recoveries;
    if (last->outcome != "succeeded" || !last->ended_ms) continue;
    int64_t ms = last->ended_ms - r.started_ms;
    ++b.recovered;
    ++recovered;
    b.total_ms += ms;
    total_ms += ms;
    b.recovery_ms.push_back(ms);
    if (ms >= b.worst_ms) {
      b.worst_ms = ms;
      b.worst_run = r.id;
    }
  }

  if (format == "openmetrics") {
    // For node_exporter's textfile collector and anything else that reads OpenMetrics.
    std::string o;
    o += "# TYPE runbook_runs counter\n# HELP runbook_runs Runs in the journal, by runbook, mode and outcome.\n";
    for (const auto& [name, b] : books)
      for (const auto& [mo, n] : b.mode_outcome)
        o += "runbook_runs_total{runbook=\"" + om_label(name) + "\",mode=\"" + om_label(mo.first) +
             "\",outcome=\"" + om_label(mo.second) + "\"} " + std::to_string(n) + "\n";
    o += "# TYPE runbook_failures counter\n# HELP runbook_failures Runs that did not succeed, by runbook and cause (the failing effect).\n";
    for (const auto& [name, b] : books)
      for (const auto& [cause, n] : b.causes)
        o += "runbook_failures_total{runbook=\"" + om_label(name) + "\",cause=\"" + om_label(cause) + "\"} " +
             std::to_string(n) + "\n";
    o += "# TYPE runbook_recoveries counter\n# HELP runbook_recoveries Live runs (with the runs that resumed them), by runbook.\n";
    for (const auto& [name, b] : books)
      o += "runbook_recoveries_total{runbook=\"" + om_label(name) + "\"} " + std::to_string(b.recoveries) + "\n";
    static const double kBuckets[] = {1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
    o += "# TYPE runbook_recovery_seconds histogram\n# UNIT runbook_recovery_seconds seconds\n"
         "# HELP runbook_recovery_seconds Time to recover: first start to last end of the live runs that succeeded.\n";
    for (const auto& [name, b] : books) {
      if (!b.recoveries) continue;
      std::string l = "runbook=\"" + om_label(name) + "\"";
      double sum = 0;
      for (int64_t ms : b.recovery_ms) sum += static_cast<double>(ms) / 1000.0;
      for (double le : kBuckets) {
        int64_t n = std::count_if(b.recovery_ms.begin(), b.recovery_ms.end(),
                                  [&](int64_t ms) { return static_cast<double>(ms) / 1000.0 <= le; });
        o += "runbook_recovery_seconds_bucket{" + l + ",le=\"" + om_number(le) + "\"} " + std::to_string(n) + "\n";
      }
      o += "runbook_recovery_seconds_bucket{" + l + ",le=\"+Inf\"} " + std::to_string(b.recovery_ms.size()) + "\n";
      o += "runbook_recovery_seconds_sum{" + l + "} " + om_number(sum) + "\n";
      o += "runbook_recovery_seconds_count{" + l + "} " + std::to_string(b.recovery_ms.size()) + "\n";
    }
    o += "# TYPE runbook_last_run_timestamp_seconds gauge\n# UNIT runbook_last_run_timestamp_seconds seconds\n"
         "# HELP runbook_last_run_timestamp_seconds When the last run of the runbook started (Unix time).\n";
    for (const auto& [name, b] : books)
      o += "runbook_last_run_timestamp_seconds{runbook=\"" + om_label(name) + "\"} " +
           om_number(static_cast<double>(b.last_ms) / 1000.0) + "\n";
    o += "# TYPE runbook_last_success_timestamp_seconds gauge\n# UNIT runbook_last_success_timestamp_seconds seconds\n"
         "# HELP runbook_last_success_timestamp_seconds When the last run of the runbook that succeeded ended (Unix time).\n";
    for (const auto& [name, b] : books)
      if (b.last_success_ms)
        o += "runbook_last_success_timestamp_seconds{runbook=\"" + om_label(name) + "\"} " +
             om_number(static_cast<double>(b.last_success_ms) / 1000.0) + "\n";
    o += "# TYPE runbook_last_run_succeeded gauge\n# HELP runbook_last_run_succeeded 1 if the last run of the runbook succeeded, else 0.\n";
    for (const auto& [name, b] : books)
      o += "runbook_last_run_succeeded{runbook=\"" + om_label(name) + "\"} " +
           std::string(b.last_outcome == "succeeded" ? "1" : "0") + "\n";
    o += "# EOF\n";
    std::fputs(o.c_str(), stdout);
    return kExitOk;
  }
  if (format == "json") {
    json out{{"journal", j.path()}, {"since", f.since_ms ? json(iso_utc(f.since_ms)) : json(nullptr)},
             {"total_runs", runs.size()}, {"runbooks", json::object()}, {"by_cause", causes}};
    for (const auto& [name, b] : books)
      out["runbooks"][name] = {{"runs", b.runs}, {"by_mode", b.modes}, {"by_outcome", b.outcomes},
                               {"by_cause", b.causes}, {"recoveries", b.recoveries},
                               {"recovered", b.recovered},
                               {"mean_recovery_ms", b.recovered ? json(b.total_ms / b.recovered) : json(nullptr)},
                               {"worst_recovery_ms", b.recovered ? json(b.worst_ms) : json(nullptr)},
                               {"worst_recovery_run", b.recovered ? json(b.worst_run) : json(nullptr)}};
    // The figures rollback_metrics.py kept, under its names.
    std::string most = "";
    int64_t most_n = 0;
    for (const auto& [k, n] : causes)
      if (n > most_n) most = k, most_n = n;
    out["statistics"] = {{"total_rollbacks", recoveries}, {"by_cause", causes},
                         {"average_recovery_time", recovered ? (total_ms / 60000.0) / recovered : 0.0},
                         {"most_common_cause", most.empty() ? json(nullptr) : json(most)}};
    print_typed("stats", out);
    return kExitOk;
  }
  if (runs.empty()) {
    std::printf("no runs in %s%s\n", j.path().c_str(), since.empty() ? "" : (" since " + since).c_str());
    return kExitOk;
  }
  std::printf("%-24s %5s %5s %5s %5s %6s %7s %7s %6s  %-9s %-9s\n", "RUNBOOK", "RUNS", "LIVE", "DRY",
              "OK", "FAILED", "INTERR", "CRASHED", "ERROR", "MTTR", "WORST");
  for (const auto& [name, b] : books) {
    auto n = [&](const std::map<std::string, int64_t>& m, const char* k) {
      auto it = m.find(k);
      return it == m.end() ? int64_t(0) : it->second;
    };
    std::printf("%-24s %5lld %5lld %5lld %5lld %6lld %7lld %7lld %6lld  %-9s %-9s\n",
                truncate(name, 24).c_str(), (long long)b.runs,
                (long long)(n(b.modes, "live") + n(b.modes, "resume")), (long long)n(b.modes, "dry-run"),
                (long long)n(b.outcomes, "succeeded"), (long long)n(b.outcomes, "failed"),
                (long long)n(b.outcomes, "interrupted"),
                (long long)(n(b.outcomes, "crashed") + n(b.outcomes, "running")), (long long)n(b.outcomes, "error"),
                b.recovered ? format_duration(Millis(b.total_ms / b.recovered)).c_str() : "-",
                b.recovered ? format_duration(Millis(b.worst_ms)).c_str() : "-");
  }
  std::printf("\ntime to recover: live runs (with the runs that resumed them) that succeeded, first start to last end\n");
  std::printf("recoveries: %lld, recovered: %lld, mean %s\n", (long long)recoveries, (long long)recovered,
              recovered ? format_duration(Millis(total_ms / recovered)).c_str() : "-");
  if (!causes.empty()) {
    std::printf("\nby cause (the failing effect of the runs that did not succeed):\n");
    std::vector<std::pair<int64_t, std::string>> sorted;
    for (const auto& [k, n] : causes) sorted.emplace_back(-n, k);
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [n, k] : sorted) std::printf("  %5lld  %s\n", (long long)-n, k.c_str());
  }
  return kExitOk;
}

}  // namespace rb::cli
