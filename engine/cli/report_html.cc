#include "cli/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

#include "core/duration.h"
#include "core/strings.h"

namespace rb::cli {
namespace {

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters other than tab and newline have no place in a page.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') out += ' ';
        else out += c;
    }
  }
  return out;
}

std::string text_of(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string str(const json& o, const char* key) {
  return o.is_object() && o.contains(key) ? text_of(o[key]) : std::string();
}

int64_t num(const json& o, const char* key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_number()) return 0;
  return o[key].get<int64_t>();
}

std::string ms_text(int64_t ms) {
  if (ms <= 0) return "0 ms";
  if (ms < 1000) return std::to_string(ms) + " ms";
  return format_duration(Millis(ms));
}

// One of the colours of the legend, by what happened.
const char* colour(const std::string& what) {
  if (what == "succeeded" || what == "done") return "#2e7d32";
  if (what == "failed" || what == "error") return "#c62828";
  if (what == "begun" || what == "crashed" || what == "running") return "#ef6c00";
  if (what == "interrupted" || what == "timeout") return "#f9a825";
  if (what == "planned" || what == "predicted") return "#7e57c2";
  return "#9e9e9e";
}

const char* effect_colour(const json& e) {
  std::string state = str(e, "state");
  if (state == "done") return str(e, "kind") == "change" ? "#1565c0" : "#90a4ae";
  return colour(state);
}

struct Row {
  json step;
  std::vector<const json*> effects;
};

// A tick spacing of 1, 2 or 5 × 10^k ms giving about six ticks over `total`.
int64_t tick_step(int64_t total) {
  double raw = static_cast<double>(total) / 6.0;
  double mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1.0))));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) return std::max<int64_t>(1, static_cast<int64_t>(m * mag));
  return std::max<int64_t>(1, static_cast<int64_t>(10 * mag));
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string timeline_svg(const json& r) {
  const json& tl = r.contains("timeline") && r["timeline"].is_array() ? r["timeline"] : json::array();
  std::vector<Row> rows;
  std::vector<const json*> run_marks;
  int64_t total = 1;
  size_t drawn = 0, effects_total = 0;
  for (const auto& ev : tl) {
    std::string type = str(ev, "type");
    int64_t end = num(ev, "elapsed_ms") + num(ev, "duration_ms");
    total = std::max(total, end);
    if (type == "run") run_marks.push_back(&ev);
    if (type == "step") rows.push_back(Row{ev, {}});
    if (type == "effect") {
      ++effects_total;
      if (!rows.empty() && drawn < kMaxDrawnEffects) {
        rows.back().effects.push_back(&ev);
        ++drawn;
      }
    }
    if (type == "run_end") total = std::max(total, num(ev, "elapsed_ms"));
  }
  const double label_w = 280, chart_w = 680, row_h = 24, top = 28;
  const double width = label_w + chart_w + 20;
  const double height = top + row_h * static_cast<double>(std::max<size_t>(rows.size(), 1)) + 30;
  auto x = [&](int64_t ms) { return label_w + chart_w * static_cast<double>(ms) / static_cast<double>(total); };
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" role=\"img\" aria-label=\"timeline of the incident\" width=\"" +
       fmt(width) + "\" height=\"" + fmt(height) + "\" viewBox=\"0 0 " + fmt(width) + " " + fmt(height) + "\">\n";
  // The time axis: ticks over the whole incident.
  int64_t step = tick_step(total);
  for (int64_t t = 0; t <= total; t += step) {
    s += "<line class=\"tick\" x1=\"" + fmt(x(t)) + "\" y1=\"" + fmt(top - 6) + "\" x2=\"" + fmt(x(t)) + "\" y2=\"" +
         fmt(height - 24) + "\" stroke=\"#e0e0e0\"/>";
    s += "<text x=\"" + fmt(x(t)) + "\" y=\"" + fmt(top - 10) + "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#616161\">" +
         esc(ms_text(t)) + "</text>\n";
  }
  for (const json* m : run_marks) {
    double mx = x(num(*m, "elapsed_ms"));
    s += "<line class=\"run-mark\" x1=\"" + fmt(mx) + "\" y1=\"" + fmt(top - 4) + "\" x2=\"" + fmt(mx) + "\" y2=\"" +
         fmt(height - 24) + "\" stroke=\"#424242\" stroke-dasharray=\"4 3\"><title>" + esc(str(*m, "text")) +
         "</title></line>\n";
  }
  double y = top;
  for (const auto& row : rows) {
    const json& st = row.step;
    std::string name = str(st, "name");
    std::string label = "#" + str(st, "run") + " " + name + (num(st, "attempt") > 1 ? " (attempt " + str(st, "attempt") + ")" : "");
    s += "<g class=\"step\" data-run=\"" + esc(str(st, "run")) + "\" data-step=\"" + esc(str(st, "step")) +
         "\" data-name=\"" + esc(name) + "\" data-outcome=\"" + esc(str(st, "outcome")) + "\">";
    s += "<text x=\"4\" y=\"" + fmt(y + 12) + "\" font-size=\"12\" fill=\"#212121\">" + esc(truncate(label, 42)) + "</text>";
    double x1 = x(num(st, "elapsed_ms"));
    double w = std::max(2.0, x(num(st, "elapsed_ms") + num(st, "duration_ms")) - x1);
    s += "<rect x=\"" + fmt(x1) + "\" y=\"" + fmt(y + 2) + "\" width=\"" + fmt(w) + "\" height=\"11\" rx=\"2\" fill=\"" +
         colour(str(st, "outcome")) + "\"><title>" + esc(name + ": " + str(st, "outcome") + ", " + ms_text(num(st, "duration_ms")) +
         (str(st, "error").empty() ? "" : " — " + str(st, "error"))) + "</title></rect>";
    for (const json* e : row.effects) {
      double ex = x(num(*e, "elapsed_ms"));
      double ew = std::max(2.0, x(num(*e, "elapsed_ms") + num(*e, "duration_ms")) - ex);
      s += "<rect class=\"effect\" data-effect=\"" + esc(str(*e, "effect")) + "\" data-name=\"" + esc(str(*e, "name")) +
           "\" data-state=\"" + esc(str(*e, "state")) + "\" x=\"" + fmt(ex) + "\" y=\"" + fmt(y + 15) + "\" width=\"" + fmt(ew) +
           "\" height=\"6\" fill=\"" + effect_colour(*e) + "\"><title>" +
           esc("#" + str(*e, "effect") + " " + str(*e, "name") + " — " + str(*e, "describe") + " (" + str(*e, "state") + ", " +
               ms_text(num(*e, "duration_ms")) + ")") +
           "</title></rect>";
    }
    s += "</g>\n";
    y += row_h;
  }
  if (rows.empty())
    s += "<text x=\"4\" y=\"" + fmt(top + 12) + "\" font-size=\"12\" fill=\"#616161\">no steps were recorded</text>\n";
  // The legend.
  double lx = 4, ly = height - 8;
  for (auto [what, c] : std::vector<std::pair<const char*, const char*>>{
           {"step succeeded", "#2e7d32"}, {"failed", "#c62828"}, {"in doubt / crashed", "#ef6c00"},
           {"interrupted", "#f9a825"}, {"change", "#1565c0"}, {"probe", "#90a4ae"}, {"planned", "#7e57c2"}}) {
    s += "<rect x=\"" + fmt(lx) + "\" y=\"" + fmt(ly - 9) + "\" width=\"10\" height=\"10\" fill=\"" + c + "\"/>";
    s += "<text x=\"" + fmt(lx + 14) + "\" y=\"" + fmt(ly) + "\" font-size=\"10\" fill=\"#424242\">" + what + "</text>";
    lx += 14 + 7.0 * static_cast<double>(std::string(what).size()) + 14;
  }
  s += "</svg>\n";
  if (effects_total > drawn)
    s += "<p class=\"note\">" + std::to_string(effects_total - drawn) + " of " + std::to_string(effects_total) +
         " effects are not drawn (the chart shows the first " + std::to_string(kMaxDrawnEffects) +
         "); every one is in the timeline table below.</p>\n";
  return s;
}

// A table of `rows` (an array of objects) with the given columns {key, heading}.
std::string table(const json& rows, const std::vector<std::pair<const char*, const char*>>& cols, const char* cls) {
  if (!rows.is_array() || rows.empty()) return "<p class=\"none\">none</p>\n";
  std::string s = std::string("<table class=\"") + cls + "\"><thead><tr>";
  for (const auto& [k, h] : cols) s += std::string("<th>") + h + "</th>";
  s += "</tr></thead><tbody>\n";
  for (const auto& row : rows) {
    s += "<tr>";
    for (const auto& [k, h] : cols) {
      std::string v = str(row, k);
      if (std::string(k).find("_ms") != std::string::npos && row.contains(k) && row[k].is_number()) v = ms_text(num(row, k));
      s += "<td>" + esc(truncate(v, 2000)) + "</td>";
    }
    s += "</tr>\n";
  }
  return s + "</tbody></table>\n";
}

const char* kStyle = R"css(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212121;margin:24px auto;max-width:1040px;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e0e0e0;padding-bottom:3px}
dl.header{display:grid;grid-template-columns:160px 1fr;gap:2px 12px;margin:12px 0}dl.header dt{color:#616161}dl.header dd{margin:0}
.outcome{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;border-bottom:1px solid #eeeeee;padding:3px 6px;vertical-align:top}
th{background:#fafafa}td{word-break:break-word}.none,.note{color:#757575}code{font-size:12px}
svg.timeline{border:1px solid #e0e0e0;background:#fff;max-width:100%;height:auto}
)css";

}  // namespace

std::string report_html(const json& r) {
  std::string title = str(r, "title");
  std::string outcome = str(r, "outcome");
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"generator\" content=\"runbook report\">\n";
  h += "<title>" + esc(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  h += "<h1>" + esc(title) + "</h1>\n";
  h += "<p>outcome <span class=\"outcome\" id=\"outcome\" style=\"background:" + std::string(colour(outcome)) + "\">" +
       esc(outcome) + "</span> · verification " + esc(str(r, "verification")) + "</p>\n";
  const json& rb = r.contains("runbook") ? r["runbook"] : json::object();
  const json& who = r.contains("who") ? r["who"] : json::object();
  h += "<dl class=\"header\">\n";
  auto item = [&](const char* k, const std::string& v) {
    if (!v.empty()) h += std::string("<dt>") + k + "</dt><dd>" + esc(v) + "</dd>\n";
  };
  item("runbook", str(rb, "name") + " " + str(rb, "version"));
  item("file", str(rb, "file"));
  item("sha256", str(rb, "sha256"));
  if (rb.contains("git"))
    item("git", str(rb["git"], "commit") + " (" + str(rb["git"], "status") + ")");
  item("who", str(who, "user") + "@" + str(who, "host"));
  item("where", str(who, "cwd"));
  item("mode", str(r, "mode"));
  item("trigger", str(r, "trigger"));
  item("started", str(r, "started"));
  item("ended", r.contains("ended") && !r["ended"].is_null() ? str(r, "ended") : "not ended (the process died)");
  item("time to recover",
       r.contains("recovery_ms") && r["recovery_ms"].is_number() ? ms_text(num(r, "recovery_ms")) : "not recovered");
  item("exit code", str(r, "exit_code"));
  h += "</dl>\n";

  h += "<h2 id=\"timeline\">Timeline</h2>\n" + timeline_svg(r);
  h += "<h2 id=\"failures\">What failed</h2>\n";
  json failures = json::array();
  if (r.contains("failures"))
    for (const auto& f : r["failures"]) {
      json row = f;
      if (f.contains("effect") && f["effect"].is_object()) {
        row["effect_name"] = str(f["effect"], "name") + " — " + str(f["effect"], "describe");
        row["site"] = str(f["effect"], "site");
        if (str(row, "error").empty()) row["error"] = str(f["effect"], "error");
      } else if (f.contains("name")) {
        row["effect_name"] = str(f, "name") + " — " + str(f, "describe");
      }
      failures.push_back(row);
    }
  h += table(failures, {{"run", "run"}, {"step_name", "step"}, {"effect_name", "effect"}, {"site", "where (file:line)"}, {"error", "error"}},
             "failures");
  h += "<h2 id=\"changes\">What changed</h2>\n";
  h += table(r.value("changes", json::array()), {{"run", "run"}, {"effect", "#"}, {"name", "primitive"}, {"describe", "what"}, {"at", "at"}, {"how", "how"}},
             "changes");
  h += "<h2 id=\"backups\">Backups</h2>\n";
  h += table(r.value("backups", json::array()), {{"run", "run"}, {"effect", "#"}, {"name", "primitive"}, {"what", "kind"}, {"path", "where"}},
             "backups");
  if (r.contains("commits") && !r["commits"].empty()) {
    h += "<h2 id=\"commits\">Commits</h2>\n";
    h += table(r["commits"], {{"run", "run"}, {"name", "primitive"}, {"describe", "what"}, {"previous", "from"}, {"commit", "commit"}}, "commits");
  }
  if (r.contains("requests") && !r["requests"].empty()) {
    h += "<h2 id=\"requests\">Requests</h2>\n";
    h += table(r["requests"], {{"run", "run"}, {"method", "method"}, {"url", "url"}, {"status", "status"}, {"error", "error"}}, "requests");
  }
  h += "<h2 id=\"runs\">Runs of this incident</h2>\n";
  h += table(r.value("runs", json::array()),
             {{"id", "run"}, {"mode", "mode"}, {"outcome", "outcome"}, {"started", "started"}, {"duration_ms", "took"}, {"user", "user"},
              {"host", "host"}, {"parent_id", "resumes"}, {"error", "error"}},
             "runs");
  h += "<h2 id=\"params\">Parameters</h2>\n";
  json params = json::array();
  if (r.contains("params") && r["params"].is_object())
    for (auto it = r["params"].begin(); it != r["params"].end(); ++it) params.push_back({{"name", it.key()}, {"value", text_of(it.value())}});
  h += table(params, {{"name", "name"}, {"value", "value"}}, "params");
  h += "<h2 id=\"events\">Timeline, line by line</h2>\n";
  json events = json::array();
  if (r.contains("timeline"))
    for (const auto& ev : r["timeline"]) {
      std::string type = str(ev, "type");
      std::string what = type == "step"     ? "step " + str(ev, "name") + ": " + str(ev, "outcome")
                         : type == "effect" ? "#" + str(ev, "effect") + " " + str(ev, "describe") + " (" + str(ev, "state") + ")"
                         : type == "log"    ? "[" + str(ev, "level") + "] " + str(ev, "text")
                                            : str(ev, "text");
      if (!str(ev, "error").empty()) what += " — " + str(ev, "error");
      events.push_back({{"at", str(ev, "at")}, {"elapsed_ms", num(ev, "elapsed_ms")}, {"type", type}, {"what", what}, {"site", str(ev, "site")}});
    }
  h += table(events, {{"at", "at (UTC)"}, {"elapsed_ms", "elapsed"}, {"type", "type"}, {"what", "what"}, {"site", "where"}}, "events");
  h += "<p class=\"note\">Written by <code>runbook report --format html</code> from the journal; secrets are redacted as everywhere.</p>\n";
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace rb::cli
