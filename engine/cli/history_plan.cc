// Plan files. `exec FILE --dry-run --save-plan PLAN` writes what the dry-run planned together
// with fingerprints of what the plan depended on: the runbook's hash, its parameters, and the
// result of every probe it made. `exec FILE --plan PLAN` dry-runs again (journaled nowhere) and
// compares; only when everything still holds does it execute, live, and at most once: the
// plan's id goes into the run's row, where a unique index refuses a second run of it.
#include <cstdio>
#include <filesystem>
#include <fstream>
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

constexpr const char* kPlanFormat = "runbook-plan/1";

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

}  // namespace

void save_plan(Journal& j, int64_t dry_run_id, const std::string& path) {
  RunRecord run = *j.run(dry_run_id);
  auto effects = j.effects(dry_run_id);
  json plan{{"format", kPlanFormat},
            {"id", random_id()},
            {"created", iso_utc(now_epoch_ms())},
            {"runbook", run.runbook},
            {"version", run.version},
            {"file", run.file},
            {"sha256", run.sha256},
            {"modules", run.modules},
            {"git_commit", run.git_commit},
            {"params", run.params},
            {"secrets_given", run.extra.contains("secrets_given") ? run.extra["secrets_given"] : json::array()},
            {"dry_run", run.id},
            {"user", run.user},
            {"host", run.host},
            {"effects", json::array()}};
  int changes = 0;
  for (const auto& e : effects) {
    plan["effects"].push_back(effect_entry(e));
    changes += e.kind == "change";
  }
  plan["changes"] = changes;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UsageError("cannot write the plan to " + path);
  out << plan.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  out.close();
  if (!out) throw std::runtime_error("writing the plan to " + path + " failed");
  run.extra["saved_plan"] = {{"id", plan["id"]}, {"path", path}};
  j.update_run(run);
  j.flush();
}

PlanCheck check_plan(Journal& j, const std::string& plan_path, const std::string& file,
                     const std::map<std::string, std::string>& given) {
  std::string text, err;
  if (!read_source_file(plan_path, &text, &err, 64u << 20))  // bounded: not /dev/zero
    throw UsageError("cannot read the plan: " + err);
  json plan = parse_json(text);
  if (plan.is_discarded() || !plan.is_object() || plan.value("format", "") != kPlanFormat)
    throw UsageError(plan_path + " is not a runbook plan (made by exec --dry-run --save-plan)");
  PlanCheck c;
  c.plan_id = plan["id"];
  c.params = plan["params"];
  if (auto by = j.run_of_plan(c.plan_id)) {
    c.executed_by = *by;
    return c;
  }
  auto drift = [&](std::string what, json expected, json actual) {
    c.drift.push_back({{"what", std::move(what)}, {"expected", std::move(expected)}, {"actual", std::move(actual)}});
  };
  std::string bytes;
  if (!read_source_file(file, &bytes, &err)) throw UsageError(err);
  std::string now = sha256_hex(bytes);
  if (now != plan["sha256"]) {
    drift("the runbook file " + file, plan["sha256"], now);
    return c;  // another file: its effects cannot be compared
  }

  // The plan's world again: a dry-run, journaled only in memory.
  Journal scratch(":memory:");
  ExecRequest req;
  req.file = file;
  req.typed_params = plan["params"];
  req.reuse_params = true;
  req.params = given;
  if (plan.contains("secrets_given") && plan["secrets_given"].is_array())
    req.secrets_given = plan["secrets_given"].get<std::vector<std::string>>();
  req.options.mode = Mode::DryRun;
  req.options.artifacts_root = (std::filesystem::temp_directory_path() / "runbook-plan-check").string();
  ExecResult res = execute(req, &scratch, nullptr, builtin_registry());
  if (res.exit_code == kExitUsage) {
    if (res.param_changes.is_object() && !res.param_changes.empty()) {
      for (auto it = res.param_changes.begin(); it != res.param_changes.end(); ++it)
        drift("parameter '" + it.key() + "'", it.value()["from"], it.value()["to"]);
      return c;
    }
    throw UsageError(res.error);
  }
  if (res.outcome != "succeeded")
    drift("the dry-run's outcome", "succeeded", res.outcome + ": " + res.error);
  auto effects = scratch.effects(res.run_id);
  const json& planned = plan["effects"];
  size_t n = std::max(effects.size(), planned.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= effects.size()) {
      drift("effect #" + std::to_string(i + 1) + " " + planned[i]["name"].get<std::string>(),
            planned[i]["describe"], "(no longer made)");
      break;
    }
    const EffectRecord& e = effects[i];
    if (i >= planned.size()) {
      drift("effect #" + std::to_string(e.seq) + " " + e.name, "(not in the plan)", e.describe);
      break;
    }
    const json& p = planned[i];
    if (p["name"] != e.name || canonical(p["args"]) != canonical(e.args)) {
      drift("effect #" + std::to_string(e.seq) + ": another call than planned",
            p["name"].get<std::string>() + " " + brief_json(p["args"]),
            e.name + " " + brief_json(e.args));
      break;  // past here the two runs are not comparable
    }
    if (p.contains("fingerprint")) {
      std::string fp = fingerprint(e.state == "failed" ? json{{"error", e.error}} : e.result);
      if (fp != p["fingerprint"])
        drift("probe #" + std::to_string(e.seq) + " " + e.name + " (" + e.describe + ")",
              p.contains("result") ? canonical(p["result"]) : json(p["fingerprint"]),
              e.state == "failed" ? json{{"error", e.error}} : canonical(e.result));
    }
  }
  return c;
}

}  // namespace rb::cli
