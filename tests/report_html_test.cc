// `report --format html` (one self-contained page with the timeline drawn to scale, rendered by a
// real headless Chromium) and `stats --format openmetrics` (read back by the Prometheus client's
// OpenMetrics parser): what people look at after an incident and what their monitoring reads.
#include <gtest/gtest.h>

#include <filesystem>

#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

const char* kRollback = R"(
runbook {
  name = "flag-off",
  version = "3.0.1",
  params = {
    root   = { type = "path", required = true },
    url    = { type = "url", required = true },
    reason = { type = "string", default = "checkout errors at 5%" },
    token  = { type = "string", secret = true, required = true },
  },
}

step("Back up the config", function(p)
  fs.backup(p.root .. "/config.ini")
  fs.write(p.root .. "/config.ini", "checkout=off\n")
end)

step("Turn the flag off", function(p)
  http.post{ url = p.url .. "/api/flags", json = { flag = "checkout", enabled = false },
             headers = { Authorization = "Bearer " .. p.token } }
  sleep("300ms")
end)

step("Verify <the error rate>", function(p)
  if not fs.exists(p.root .. "/fixed") then
    error("the error rate is still 5% & rising")
  end
end)
)";

struct World {
  TempDir dir;
  HttpServer server{dir / "srv"};
  World() {
    write_file(dir / "app/config.ini", "checkout=on\n");
    write_file(dir / "rb.lua", kRollback);
  }
  std::map<std::string, std::string> env() const { return {{"RUNBOOK_JOURNAL", dir / "journal.db"}}; }
  CliResult exec() const {
    return run_cli({"exec", dir / "rb.lua", "-p", "root=" + dir / "app", "-p", "url=" + server.url(""), "-p",
                    "token=tok-9f8e7d6c5b4a"},
                   env());
  }
};

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

os::ProcessResult run(std::vector<std::string> argv, int timeout_s = 120, std::map<std::string, std::string> env = {}) {
  os::ProcessSpec s;
  s.argv = std::move(argv);
  s.env = std::move(env);
  s.timeout = std::chrono::seconds(timeout_s);
  s.max_output = 64 << 20;
  return os::run_process(s);
}

// Reads Chromium's DOM dump and screenshot: the step groups and effect bars of the chart, and
// how many pixels of the chart's colours the picture has.
const char* kInspect = R"py(
import json, sys
from html.parser import HTMLParser
from PIL import Image

class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.steps, self.effects, self.external = [], [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "g" and "step" in cls:
            self.steps.append({"name": a.get("data-name"), "outcome": a.get("data-outcome"), "run": a.get("data-run")})
        if tag == "rect" and "effect" in cls:
            self.effects.append({"name": a.get("data-name"), "state": a.get("data-state")})
        for k in ("src", "href"):
            if a.get(k):
                self.external.append(a[k])

p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
img = Image.open(sys.argv[2]).convert("RGB")
def near(c, rgb):
    return all(abs(x - y) <= 12 for x, y in zip(c, rgb))
counts = {"green": 0, "red": 0, "blue": 0}
for c, n in [(c, n) for n, c in img.getcolors(maxcolors=1 << 24)]:
    if near(c, (0x2e, 0x7d, 0x32)): counts["green"] += n
    if near(c, (0xc6, 0x28, 0x28)): counts["red"] += n
    if near(c, (0x15, 0x65, 0xc0)): counts["blue"] += n
print(json.dumps({"steps": p.steps, "effects": p.effects, "external": p.external,
                  "width": img.size[0], "height": img.size[1], "pixels": counts}))
)py";

}  // namespace

TEST(ReportHtml, OneSelfContainedPageChromiumRendersWithEveryStepAndEffectAndNoSecret) {
  World w;
  auto first = w.exec();
  ASSERT_EQ(first.code, 1) << first.out << first.err;  // Verify fails: the incident goes on
  write_file(w.dir / "app/fixed", "yes\n");
  auto resumed = run_cli({"resume", "last", "-p", "token=tok-9f8e7d6c5b4a"}, w.env());
  ASSERT_EQ(resumed.code, 0) << resumed.out << resumed.err;

  auto runs = run_cli({"runs", "--json"}, w.env());
  ASSERT_EQ(runs.code, 0);
  auto rs = runs.events();
  ASSERT_EQ(rs.size(), 2u) << runs.out;
  std::string first_id = rs.back()["id"].dump();  // newest first: the failed run is last

  std::string page_path = w.dir / "incident.html";
  auto rep = run_cli({"report", first_id, "--format", "html", "-o", page_path}, w.env());
  ASSERT_EQ(rep.code, 0) << rep.err;
  std::string page = read_file(page_path);
  ASSERT_TRUE(has(page, "<!DOCTYPE html>")) << page.substr(0, 200);
  // Self-contained: no script, nothing fetched.
  EXPECT_FALSE(has(page, "<script"));
  EXPECT_FALSE(has(page, "src="));
  EXPECT_FALSE(has(page, "@import"));
  EXPECT_FALSE(has(page, "url("));
  EXPECT_FALSE(has(page, "tok-9f8e7d6c5b4a")) << "the secret parameter is in the page";
  // The header and the sections a post-mortem reads, text escaped.
  EXPECT_TRUE(has(page, "Incident record: flag-off 3.0.1"));
  EXPECT_TRUE(has(page, "checkout errors at 5%")) << "the trigger";
  EXPECT_TRUE(has(page, "time to recover"));
  EXPECT_TRUE(has(page, "Verify &lt;the error rate&gt;"));
  EXPECT_FALSE(has(page, "Verify <the error rate>"));
  EXPECT_TRUE(has(page, "the error rate is still 5% &amp; rising"));
  EXPECT_TRUE(has(page, "rb.lua:26")) << "the failure's file:line";
  EXPECT_TRUE(has(page, "config.ini")) << "the backup and the change";
  EXPECT_TRUE(has(page, "resumes run #" + first_id)) << "the resumed run of the same incident";

  // What the report's data holds, to compare the drawing with.
  auto data = run_cli({"report", first_id, "--format", "json"}, w.env());
  ASSERT_EQ(data.code, 0);
  json r = json::parse(data.out);
  size_t steps = 0, effects = 0;
  for (const auto& ev : r["timeline"]) {
    if (ev["type"] == "step") ++steps;
    if (ev["type"] == "effect") ++effects;
  }
  ASSERT_GE(steps, 4u);  // three in the first run, Verify again in the resume
  ASSERT_GE(effects, 4u);

  // Rendered by a real browser: the DOM it built, and the picture.
  std::string profile = w.dir / "chromium-profile";
  std::vector<std::string> chromium = {"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                       "--user-data-dir=" + profile, "--window-size=1100,1600"};
  auto dom_argv = chromium;
  dom_argv.push_back("--dump-dom");
  dom_argv.push_back("file://" + page_path);
  auto dom = run(dom_argv, 120, {{"HOME", w.dir.path()}});
  ASSERT_EQ(dom.code, 0) << "chromium --dump-dom failed: " << dom.spawn_error << dom.stderr_text.substr(0, 2000);
  write_file(w.dir / "dom.html", dom.stdout_text);
  auto shot_argv = chromium;
  shot_argv.push_back("--screenshot=" + w.dir / "shot.png");
  shot_argv.push_back("file://" + page_path);
  auto shot = run(shot_argv, 120, {{"HOME", w.dir.path()}});
  ASSERT_EQ(shot.code, 0) << "chromium --screenshot failed: " << shot.stderr_text.substr(0, 2000);
  ASSERT_TRUE(std::filesystem::exists(w.dir / "shot.png"));

  write_file(w.dir / "inspect.py", kInspect);
  auto in = run({"/usr/bin/python3", w.dir / "inspect.py", w.dir / "dom.html", w.dir / "shot.png"});
  ASSERT_EQ(in.code, 0) << in.stderr_text;
  json seen = json::parse(in.stdout_text);
  EXPECT_EQ(seen["steps"].size(), steps) << seen.dump(1);
  EXPECT_EQ(seen["effects"].size(), effects) << seen.dump(1);
  EXPECT_TRUE(seen["external"].empty()) << seen["external"].dump();
  std::set<std::string> names, effect_names;
  std::string verify_outcomes;
  for (const auto& s : seen["steps"]) {
    names.insert(s["name"].get<std::string>());
    if (s["name"] == "Verify <the error rate>") verify_outcomes += s["outcome"].get<std::string>() + " ";
  }
  for (const auto& e : seen["effects"]) effect_names.insert(e["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"Back up the config", "Turn the flag off", "Verify <the error rate>"}));
  EXPECT_EQ(verify_outcomes, "failed succeeded ");
  for (const char* e : {"fs.backup", "fs.write", "http.post", "sleep", "fs.exists"})
    EXPECT_TRUE(effect_names.count(e)) << e << " is not drawn: " << seen["effects"].dump();
  // The picture has the succeeded steps (green), the failed attempt (red) and the changes (blue).
  EXPECT_EQ(seen["width"], 1100);
  EXPECT_GT(seen["pixels"]["green"].get<int>(), 50) << seen["pixels"].dump();
  EXPECT_GT(seen["pixels"]["red"].get<int>(), 20) << seen["pixels"].dump();
  EXPECT_GT(seen["pixels"]["blue"].get<int>(), 4) << seen["pixels"].dump();
}

TEST(ReportHtml, AHostileJournalStillGivesAnEscapedBoundedPage) {
  // Step names and errors are the runbook's: markup in them stays text, and a run of thousands
  // of effects draws a bounded chart.
  TempDir dir;
  write_file(dir / "rb.lua", R"(
runbook { name = "hostile", version = "1.0.0" }
step("<img src=x onerror=alert(1)>", function()
  for i = 1, 2500 do fs.exists("/nonexistent/" .. i) end
  error("\"quoted\" <b>bold</b>")
end)
)");
  auto r = run_cli({"exec", dir / "rb.lua"}, {{"RUNBOOK_JOURNAL", dir / "journal.db"}});
  ASSERT_EQ(r.code, 1) << r.err;
  auto rep = run_cli({"report", "last", "--format", "html"}, {{"RUNBOOK_JOURNAL", dir / "journal.db"}});
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_FALSE(has(rep.out, "<script")) << "markup from the runbook reached the page";
  EXPECT_FALSE(has(rep.out, "<img"));
  EXPECT_FALSE(has(rep.out, "<b>"));
  EXPECT_TRUE(has(rep.out, "&lt;img src=x onerror=alert(1)&gt;"));
  EXPECT_TRUE(has(rep.out, "500 of 2500 effects are not drawn")) << "the chart is bounded";
  EXPECT_LT(rep.out.size(), 8u << 20);
}

TEST(StatsOpenMetrics, ThePrometheusParserReadsRunsRecoveriesAndTheLastRun) {
  World w;
  ASSERT_EQ(w.exec().code, 1);
  write_file(w.dir / "app/fixed", "yes\n");
  ASSERT_EQ(run_cli({"resume", "last", "-p", "token=tok-9f8e7d6c5b4a"}, w.env()).code, 0);
  ASSERT_EQ(run_cli({"exec", w.dir / "rb.lua", "--dry-run", "-p", "root=" + w.dir / "app", "-p",
                     "url=" + w.server.url(""), "-p", "token=x"},
                    w.env())
                .code,
            0);
  auto om = run_cli({"stats", "--format", "openmetrics"}, w.env());
  ASSERT_EQ(om.code, 0) << om.err;
  ASSERT_TRUE(om.out.size() > 6 && om.out.substr(om.out.size() - 6) == "# EOF\n") << om.out;
  write_file(w.dir / "metrics.txt", om.out);
  write_file(w.dir / "parse.py", R"py(
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + "{" + ",".join("%s=%s" % kv for kv in sorted(s.labels.items())) + "}"
        out[key] = s.value
    out["type:" + fam.name] = fam.type
print(json.dumps(out))
)py");
  auto p = run({"/usr/bin/python3", w.dir / "parse.py", w.dir / "metrics.txt"});
  ASSERT_EQ(p.code, 0) << "the OpenMetrics parser refused the output: " << p.stderr_text << "\n" << om.out;
  json m = json::parse(p.stdout_text);
  EXPECT_EQ(m["type:runbook_runs"], "counter");
  EXPECT_EQ(m["type:runbook_recovery_seconds"], "histogram");
  EXPECT_EQ(m["type:runbook_last_run_timestamp_seconds"], "gauge");
  EXPECT_EQ(m["runbook_runs_total{mode=live,outcome=failed,runbook=flag-off}"], 1.0) << p.stdout_text;
  EXPECT_EQ(m["runbook_runs_total{mode=resume,outcome=succeeded,runbook=flag-off}"], 1.0);
  EXPECT_EQ(m["runbook_runs_total{mode=dry-run,outcome=succeeded,runbook=flag-off}"], 1.0);
  EXPECT_EQ(m["runbook_recoveries_total{runbook=flag-off}"], 1.0);
  EXPECT_EQ(m["runbook_recovery_seconds_count{runbook=flag-off}"], 1.0);
  EXPECT_EQ(m["runbook_recovery_seconds_bucket{le=+Inf,runbook=flag-off}"], 1.0);
  // The failed first run went 300 ms into its sleep: the recovery took at least that.
  EXPECT_GT(m["runbook_recovery_seconds_sum{runbook=flag-off}"].get<double>(), 0.3);
  EXPECT_EQ(m["runbook_failures_total{cause=(runbook code),runbook=flag-off}"], 1.0) << p.stdout_text;
  double last = m["runbook_last_run_timestamp_seconds{runbook=flag-off}"].get<double>();
  EXPECT_GT(last, 1.7e9);
  EXPECT_LT(last, 4.1e9);
  EXPECT_EQ(m["runbook_last_run_succeeded{runbook=flag-off}"], 1.0);

  auto bad = run_cli({"stats", "--format", "yaml"}, w.env());
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(has(bad.err, "--format is text, json or openmetrics")) << bad.err;
}
