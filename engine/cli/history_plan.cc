// Plan files. `exec FILE --dry-run --save-plan PLAN` first reserves a run row for the plan's
// execution (outcome "reserved"), so that the dry-run sees as `run.id` the id the execution will
// have; then writes what the dry-run planned together with what the plan depended on: the
// runbook's hash, its parameters, the result of every probe, each change's preview "basis" (what
// it acts on: the content a write replaces, ...), and the clock values it read. `exec --plan PLAN`
// dry-runs again (journaled nowhere; `run.id` the reserved id, `time.now` answered with the
// recorded values) and compares; only when everything still holds does it execute, live, as
// the reserved run (claimed atomically: one winner) and at most once (a unique index on the
// plan's id in the run rows).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "cli/history.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/source_file.h"
#include "lua/runbook.h"

namespace rb::cli {
namespace {

constexpr const char* kPlanFormat = "runbook-plan/2";
// Plans saved before the run id was reserved and the clock recorded: still executable.
bool known_format(const std::string& f) { return f == kPlanFormat || f == "runbook-plan/1"; }

std::string random_id() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 4; ++i) std::snprintf(buf + i * 8, 9, "%08x", rd());
  return buf;
}

// Parts of a result that differ from one call to the next without the world having changed
// (timings, an HTTP Date header): left out of fingerprints.
bool volatile_key(const std::string& k) {
  return k == "elapsed_ms" || k == "duration" || k == "duration_ms" || k == "headers" || k == "slept";
}

// Objects with sorted keys, volatile keys dropped: the same world gives the same text.
json canonical(const json& v) {
  if (v.is_object()) {
    std::vector<std::pair<std::string, const json*>> members;
    for (auto it = v.begin(); it != v.end(); ++it)
      if (!volatile_key(it.key())) members.emplace_back(it.key(), &*it);
    std::sort(members.begin(), members.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    json out = json::object();
    for (auto& [k, m] : members) append_member(out, std::move(k), canonical(*m));
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& x : v) out.push_back(canonical(x));
    return out;
  }
  return v;
}

std::string fingerprint(const json& v) { return sha256_hex(canonical(v).dump()); }

// A probe whose result is not a fact about the world (the clock) is not a dependency.
bool fingerprinted(const EffectRecord& e) { return e.kind == "probe" && e.name != "time.now"; }

json effect_entry(const EffectRecord& e) {
  json x{{"seq", e.seq}, {"step", e.step_idx}, {"attempt", e.attempt}, {"name", e.name},
         {"kind", e.kind}, {"args", e.args}, {"describe", e.describe}, {"state", e.state},
         {"site", e.site}};
  if (!e.preview.is_null()) x["preview"] = e.preview;
  if (e.preview.is_object() && e.preview.contains("basis")) x["basis"] = e.preview["basis"];
  if (fingerprinted(e)) {
    x["result"] = e.result;
    x["fingerprint"] = fingerprint(e.state == "failed" ? json{{"error", e.error}} : e.result);
  }
  return x;
}

std::string brief_json(const json& v, size_t max = 200) {
  std::string s = v.dump();
  return s.size() > max ? s.substr(0, max) + "…" : s;
}

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The registry of the check's dry-run: every effect as built, except that `time.now` answers, in
// order, with the values the rehearsal read (then the real clock, should the runbook read it
// more often than it did), so that names built from the clock are the plan's.
std::unique_ptr<Registry> replayed_clock_registry(const json& clock) {
  auto values = std::make_shared<std::vector<json>>();
  if (clock.is_array())
    for (const auto& v : clock)
      if (v.is_number()) values->push_back(v);
  auto next = std::make_shared<size_t>(0);
  auto reg = std::make_unique<Registry>();
  for (const Effect* e : builtin_registry().all()) {
    Effect c = *e;
    if (c.name == "time.now") {
      auto real = c.apply;
      c.apply = [values, next, real](EffectContext& ctx, const Args& a) -> json {
        if (*next < values->size()) return (*values)[(*next)++];
        return real(ctx, a);
      };
    }
    reg->add(std::move(c));
  }
  return reg;
}

std::string same_path_text(const std::string& p) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(std::filesystem::absolute(p, ec), ec);
  return ec ? p : c.string();
}

}  // namespace

PlanReservation reserve_plan_run(Journal& j, const std::string& file) {
  PlanReservation r;
  r.plan_id = random_id();
  RunRecord row;
  std::error_code ec;
  row.runbook = std::filesystem::path(file).stem().string();
  row.version = "?";
  row.file = std::filesystem::absolute(file, ec).string();
  row.mode = "live";
  row.outcome = "reserved";
  row.plan_id = r.plan_id;
  row.started_ms = now_epoch_ms();
  row.extra = {{"reserved_for_plan", r.plan_id}};
  j.begin_run(row);
  r.run_id = row.id;
  return r;
}

void drop_plan_reservation(Journal& j, const PlanReservation& r) {
  if (r.run_id) j.drop_reserved(r.run_id);
  j.flush();
}

json save_plan(Journal& j, int64_t dry_run_id, const std::string& path, const PlanReservation& resv) {
  RunRecord run = *j.run(dry_run_id);
  auto effects = j.effects(dry_run_id);
  std::error_code ec;
  json plan{{"format", kPlanFormat},
            {"id", resv.plan_id},
            {"run_id", resv.run_id},
            {"created", iso_utc(now_epoch_ms())},
            {"runbook", run.runbook},
            {"version", run.version},
            {"file", run.file},
            {"sha256", run.sha256},
            {"modules", run.modules},
            {"git_commit", run.git_commit},
            {"params", run.params},
            {"secrets_given", run.extra.contains("secrets_given") ? run.extra["secrets_given"] : json::array()},
            {"checked_live_only", run.extra.contains("checked_live_only") && run.extra["checked_live_only"].is_array()
                                      ? run.extra["checked_live_only"] : json::array()},
            {"dry_run", run.id},
            {"started_ms", run.started_ms},
            {"user", run.user},
            {"host", run.host},
            {"journal", std::filesystem::absolute(j.path(), ec).string()},
            {"clock", json::array()},
            {"effects", json::array()}};
  int changes = 0;
  for (const auto& e : effects) {
    plan["effects"].push_back(effect_entry(e));
    changes += e.kind == "change";
    if (e.name == "time.now" && e.state == "done" && e.result.is_number()) plan["clock"].push_back(e.result);
  }
  plan["changes"] = changes;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UsageError("cannot write the plan to " + path);
  out << plan.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  out.close();
  if (!out) throw std::runtime_error("writing the plan to " + path + " failed");
  j.fill_reserved(resv.run_id, dry_run_id);
  run.extra["saved_plan"] = {{"id", plan["id"]}, {"path", path}, {"run_id", resv.run_id}};
  j.update_run(run);
  j.flush();
  return plan;
}

PlanCheck check_plan(Journal& j, const std::string& plan_path, const std::string& file_given,
                     const std::map<std::string, std::string>& given) {
  std::string text, err;
  if (!read_source_file(plan_path, &text, &err, 64u << 20))  // bounded: not /dev/zero
    throw UsageError("cannot read the plan: " + err);
  json plan = parse_json(text);
  if (plan.is_discarded() || !plan.is_object() || !plan.contains("format") ||
      !plan["format"].is_string() || !known_format(plan["format"]) || !plan.contains("id") ||
      !plan["id"].is_string() || !plan.contains("file") || !plan["file"].is_string() ||
      !plan.contains("sha256") || !plan["sha256"].is_string() || !plan.contains("effects") ||
      !plan["effects"].is_array())
    throw UsageError(plan_path + " is not a runbook plan (made by exec --dry-run --save-plan)");
  PlanCheck c;
  c.plan_id = plan["id"];
  c.params = plan.contains("params") && plan["params"].is_object() ? plan["params"] : json::object();
  if (plan.contains("run_id") && plan["run_id"].is_number_integer() && plan["run_id"].get<int64_t>() > 0)
    c.planned_run_id = plan["run_id"].get<int64_t>();

  // The runbook: the plan's own (a relative path is relative to the plan's directory), or the
  // one given, which must be that file (or a copy of it elsewhere: same content).
  std::string planned_file = plan["file"];
  if (std::filesystem::path(planned_file).is_relative())
    planned_file = (std::filesystem::path(plan_path).parent_path() / planned_file).string();
  c.file = planned_file;
  if (!file_given.empty() && same_path_text(file_given) != same_path_text(planned_file)) {
    std::string bytes;
    if (!read_source_file(file_given, &bytes, &err)) throw UsageError(err);
    if (sha256_hex(bytes) != plan["sha256"])
      throw UsageError(file_given + " is not the runbook of the plan " + plan_path + " (made from " +
                       planned_file + "); run: runbook exec --plan " + plan_path);
    c.file = file_given;
  }

  if (auto by = j.run_of_plan(c.plan_id)) {
    c.executed_by = *by;
    return c;
  }
  if (c.planned_run_id) {
    auto row = j.run(c.planned_run_id);
    c.reserved = row && row->plan_id == c.plan_id && row->outcome == "reserved";
  }
  auto drift = [&](std::string what, json planned, json now, json effect = nullptr) {
    json d{{"what", std::move(what)}, {"planned", std::move(planned)}, {"now", std::move(now)}};
    if (!effect.is_null()) d["effect"] = std::move(effect);
    c.drift.push_back(std::move(d));
  };
  std::string bytes;
  if (!read_source_file(c.file, &bytes, &err)) throw UsageError(err);
  std::string now = sha256_hex(bytes);
  if (now != plan["sha256"]) {
    drift("the runbook file " + c.file, plan["sha256"], now);
    return c;  // another file: its effects cannot be compared
  }

  // The plan's world again: a dry-run, journaled only in memory, that sees the run id the
  // execution will have and the clock values the rehearsal read.
  Journal scratch(":memory:");
  ExecRequest req;
  req.file = c.file;
  req.typed_params = c.params;
  req.reuse_params = true;
  req.params = given;
  if (plan.contains("secrets_given") && plan["secrets_given"].is_array())
    for (const auto& n : plan["secrets_given"])
      if (n.is_string()) {
        if (!req.secrets_given) req.secrets_given.emplace();
        req.secrets_given->push_back(n.get<std::string>());
      }
  req.options.mode = Mode::DryRun;
  req.options.seen_id = c.planned_run_id;
  if (plan.contains("started_ms") && plan["started_ms"].is_number_integer())
    req.options.seen_started_ms = plan["started_ms"].get<int64_t>();
  req.options.artifacts_root = (std::filesystem::temp_directory_path() / "runbook-plan-check").string();
  auto registry = replayed_clock_registry(plan.contains("clock") ? plan["clock"] : json());
  ExecResult res = execute(req, &scratch, nullptr, *registry);
  if (res.exit_code == kExitUsage) {
    if (res.param_changes.is_object() && !res.param_changes.empty()) {
      for (auto it = res.param_changes.begin(); it != res.param_changes.end(); ++it)
        drift("parameter '" + it.key() + "'", it.value()["from"], it.value()["to"]);
      return c;
    }
    throw UsageError(res.error);
  }
  if (auto r = scratch.run(res.run_id); r && plan.contains("modules") && plan["modules"].is_object())
    for (auto it = plan["modules"].begin(); it != plan["modules"].end(); ++it)
      if (r->modules.is_object() && r->modules.contains(it.key()) && r->modules[it.key()] != it.value())
        drift("module '" + it.key() + "' required by the runbook", it.value(), r->modules[it.key()]);
  if (res.outcome != "succeeded")
    drift("the dry-run's outcome", "succeeded", res.outcome + ": " + res.error);
  auto effects = scratch.effects(res.run_id);
  const json& planned = plan["effects"];
  auto who = [](const EffectRecord& e) {
    return json{{"seq", e.seq}, {"name", e.name}, {"describe", e.describe}};
  };
  size_t n = std::max(effects.size(), planned.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= effects.size()) {
      const json& p = planned[i];
      drift("effect #" + std::to_string(i + 1) + " " + text_of(p.value("name", json("?"))),
            p.value("describe", json("?")), "(no longer made)",
            {{"seq", p.value("seq", json(i + 1))}, {"name", p.value("name", json("?"))},
             {"describe", p.value("describe", json("?"))}});
      break;
    }
    const EffectRecord& e = effects[i];
    if (i >= planned.size()) {
      drift("effect #" + std::to_string(e.seq) + " " + e.name, "(not in the plan)", e.describe, who(e));
      break;
    }
    const json& p = planned[i];
    if (!p.is_object() || p.value("name", json()) != e.name) {
      drift("effect #" + std::to_string(e.seq) + ": another call than planned",
            p.is_object() ? text_of(p.value("name", json("?"))) + " " + brief_json(p.value("args", json()))
                          : brief_json(p),
            e.name + " " + brief_json(e.args), who(e));
      break;  // past here the two runs are not comparable
    }
    if (canonical(p.value("args", json())) != canonical(e.args)) {
      drift("effect #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe + "): other arguments than planned",
            canonical(p.value("args", json())), canonical(e.args), who(e));
      break;
    }
    if (p.contains("fingerprint")) {
      std::string fp = fingerprint(e.state == "failed" ? json{{"error", e.error}} : e.result);
      if (fp != p["fingerprint"])
        drift("probe #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe + ")",
              p.contains("result") ? canonical(p["result"]) : json(p["fingerprint"]),
              e.state == "failed" ? json{{"error", e.error}} : canonical(e.result), who(e));
    }
    if (p.contains("basis")) {
      // What the change acts on, as the preview found it then and finds it now.
      json basis_now = e.preview.is_object() && e.preview.contains("basis") ? e.preview["basis"] : json();
      if (basis_now.is_null())
        drift(e.kind + " #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe + "): what it acts on",
              canonical(p["basis"]),
              "(cannot be looked at now: " +
                  (e.preview.is_null() ? std::string("no preview")
                                       : brief_json(e.preview.is_object() && e.preview.contains("text") ? e.preview["text"] : e.preview)) +
                  ")",
              who(e));
      else if (canonical(basis_now) != canonical(p["basis"]))
        drift(e.kind + " #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe + "): what it acts on",
              canonical(p["basis"]), canonical(basis_now), who(e));
    }
  }
  return c;
}

}  // namespace rb::cli
