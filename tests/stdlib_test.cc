// The standard library (stdlib/runbook/*.lua) against real things: a real HTTP server on
// 127.0.0.1 (tests/support/http_server.py) for runbook.checks and runbook.monitor's loops, real
// files for runbook.files and runbook.metrics, a real webhook receiver and SMTP sink for
// runbook.notify; every function's bad-argument error names the call; the installed layout
// (share/runbook/stdlib) finds the modules. The same modules under `runbook test` with fakes:
// tests/stdlib/*_test.lua (ctest stdlib_lua).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "support/support.h"

using namespace rb::test;
using rb::json;

namespace {

std::map<std::string, std::string> env_of(const TempDir& d) { return {{"RUNBOOK_JOURNAL", d / "j.db"}}; }

std::string journal_text(const std::string& journal) {
  std::string s;
  for (const std::string& f : {journal, journal + "-wal"})
    if (std::filesystem::exists(f)) s += read_file(f);
  return s;
}

// What the runbook logged as "result: {json}" (the last one).
json result_of(const CliResult& r) {
  std::string all = r.out + r.err;
  size_t at = all.rfind("result: ");
  if (at == std::string::npos) return json();
  size_t end = all.find('\n', at);
  return json::parse(all.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8), nullptr, false);
}

std::vector<json> posts(const std::string& dir) {
  std::vector<json> out;
  std::ifstream in(dir + "/requests.log");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

int mode_of(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

// A runbook with one step whose body is `body`, the params `params` (Lua table fields).
std::string runbook(const std::string& params, const std::string& body) {
  return "local checks = require \"runbook.checks\"\n"
         "local monitor = require \"runbook.monitor\"\n"
         "local metrics = require \"runbook.metrics\"\n"
         "local files = require \"runbook.files\"\n"
         "local notify = require \"runbook.notify\"\n"
         "runbook { name = \"stdlib-live\", version = \"1.0.0\", params = notify.with_params{ " + params + " } }\n"
         "local function show(r) log.info(\"result: \" .. json.encode(r)) end\n"
         "step(\"call\", function(p)\n" + body + "\nend)\n";
}

}  // namespace

// checks.endpoints: one GET each against a real server; a dead port and a 500 are the failed
// ones, logged as warnings; nothing raises for the server's state.
TEST(Stdlib, ChecksEndpointsAgainstARealServer) {
  TempDir d;
  HttpServer srv(d / "srv");
  int dead = free_port();
  write_file(d / "rb.lua", runbook("url = { type = \"string\" }, dead = { type = \"string\" }",
                                   "show(checks.endpoints{ urls = { p.url .. \"/health\", p.dead } })"));
  std::string dead_url = "http://127.0.0.1:" + std::to_string(dead) + "/health";
  auto r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "dead=" + dead_url}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json res = result_of(r);
  EXPECT_EQ(res["ok"], false) << r.out;
  EXPECT_EQ(res["passed"], 1) << r.out;
  EXPECT_EQ(res["failed"], json::array({dead_url})) << r.out;
  EXPECT_EQ(res["results"][0]["status"], 200) << r.out;
  EXPECT_NE(r.out.find("/health -> 200 in "), std::string::npos) << r.out;

  srv.set_status(500);
  r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "dead=" + dead_url}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(result_of(r)["passed"], 0) << r.out;
  EXPECT_NE(r.out.find(srv.url("/health") + " -> 500"), std::string::npos) << r.out;
}

// checks.wait_endpoints polls a server that comes back (503, then 200 after a second and a
// half) and returns once it answers; checks.wait_healthy on one that stays down fails naming it
// within its timeout.
TEST(Stdlib, ChecksWaitForARealServerToComeBack) {
  TempDir d;
  HttpServer srv(d / "srv");
  srv.set_status(503);
  write_file(d / "wait.lua", runbook("url = { type = \"string\" }",
                                     "show(checks.wait_endpoints{ urls = { p.url .. \"/health\" }, timeout = \"20s\", interval = \"200ms\" })"));
  std::thread back([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    srv.set_status(200);
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli({"exec", d / "wait.lua", "-p", "url=" + srv.url("")}, env_of(d));
  back.join();
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
  EXPECT_EQ(result_of(r)["results"][0]["status"], 200) << r.out;

  srv.set_status(503);
  write_file(d / "healthy.lua", runbook("url = { type = \"string\" }",
                                        "checks.wait_healthy{ urls = { p.url .. \"/health\" }, timeout = \"2s\" }"));
  t0 = std::chrono::steady_clock::now();
  r = run_cli({"exec", d / "healthy.lua", "-p", "url=" + srv.url("")}, env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  EXPECT_NE((r.out + r.err).find("/health"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("503"), std::string::npos) << r.out << r.err;
}

// checks.log_errors counts a real log's error lines case-insensitively and keeps the last ones.
TEST(Stdlib, ChecksLogErrorsCountsARealLog) {
  TempDir d;
  write_file(d / "app.log", "INFO start\nERROR db down\nerror: retry\nINFO ok\nTraceback (most recent call last)\n");
  write_file(d / "rb.lua", runbook("log = { type = \"string\" }",
                                   "show(checks.log_errors{ path = p.log, patterns = { \"ERROR\", \"Traceback\" }, max = 2 })"));
  auto r = run_cli({"exec", d / "rb.lua", "-p", "log=" + d / "app.log"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json res = result_of(r);
  EXPECT_EQ(res["count"], 3) << r.out;
  EXPECT_EQ(res["lines"], json::array({"error: retry", "Traceback (most recent call last)"})) << r.out;
  r = run_cli({"exec", d / "rb.lua", "-p", "log=" + d / "rotated.log"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(result_of(r)["exists"], false) << r.out;
  EXPECT_EQ(result_of(r)["count"], 0) << r.out;
}

// monitor.watch samples a real server every interval for its duration (and really waits); a
// server that fails max_failures samples in a row stops it; a log that gains errors while it
// watches stops it; a log that nobody writes fails log_must_grow.
TEST(Stdlib, MonitorWatchLoopsAgainstARealServer) {
  TempDir d;
  HttpServer srv(d / "srv");
  write_file(d / "app.log", "INFO up\n");
  write_file(d / "rb.lua", runbook(
      "url = { type = \"string\" }, log = { type = \"string\" }, duration = { type = \"string\", default = \"3s\" }, "
      "grow = { type = \"bool\", default = false }",
      "show(monitor.watch{ urls = { p.url .. \"/health\" }, duration = p.duration, interval = \"1s\", max_failures = 2,\n"
      "                    log_file = p.log, max_new_errors = 2, log_must_grow = p.grow, resources = true,\n"
      "                    disk_path = p.log, max_disk_pct = 100, min_memory_pct = 0 })"));
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "log=" + d / "app.log"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2900));
  json res = result_of(r);
  EXPECT_GE(res["samples"].get<int>(), 3) << r.out;
  EXPECT_LE(res["samples"].get<int>(), 5) << r.out;
  EXPECT_EQ(res["new_errors"], 0) << r.out;
  EXPECT_NE(r.out.find("resources: memory "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("monitored " + std::to_string(res["samples"].get<int>()) + " samples"), std::string::npos) << r.out;

  srv.set_status(502);
  r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "log=" + d / "app.log", "-p", "duration=30s"},
              env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find(srv.url("/health") + " failed 2 samples in a row"), std::string::npos) << r.out << r.err;

  srv.set_status(200);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 40 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::ofstream(d / "app.log", std::ios::app) << "ERROR payment failed " << i << "\n";
    }
  });
  r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "log=" + d / "app.log", "-p", "duration=30s"},
              env_of(d));
  stop = true;
  writer.join();
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("new error lines in " + d / "app.log" + " while monitoring"), std::string::npos)
      << r.out << r.err;

  write_file(d / "quiet.log", "INFO up\n");
  r = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url(""), "-p", "log=" + d / "quiet.log", "-p", "duration=2s",
               "-p", "grow=true"},
              env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("was not written while monitoring"), std::string::npos) << r.out << r.err;

  // A dry-run takes one sample and does not wait.
  t0 = std::chrono::steady_clock::now();
  r = run_cli({"exec", d / "rb.lua", "--dry-run", "-p", "url=" + srv.url(""), "-p", "log=" + d / "app.log", "-p",
               "duration=1h"},
              env_of(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  EXPECT_NE(r.out.find("monitored 1 samples"), std::string::npos) << r.out;
}

// files.append writes real files: a new one in a new directory, then an entry on a line of its
// own after content without a final newline.
TEST(Stdlib, FilesAppendToARealLog) {
  TempDir d;
  std::string log = d / "logs/deep/rollbacks.log";
  write_file(d / "rb.lua", runbook("path = { type = \"string\" }, text = { type = \"string\" }",
                                   "show(files.append{ path = p.path, text = p.text })"));
  auto r = run_cli({"exec", d / "rb.lua", "-p", "path=" + log, "-p", "text=[10:00] ROLLBACK INITIATED"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(log), "[10:00] ROLLBACK INITIATED");
  r = run_cli({"exec", d / "rb.lua", "-p", "path=" + log, "-p", "text=[10:05] verified"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(log), "[10:00] ROLLBACK INITIATED\n[10:05] verified");
  EXPECT_EQ(result_of(r)["bytes"], read_file(log).size()) << r.out;
  EXPECT_TRUE(result_of(r)["previous"].is_string()) << "the old content is kept as an artifact\n" << r.out;
  // A dry-run writes nothing.
  r = run_cli({"exec", d / "rb.lua", "--dry-run", "-p", "path=" + log, "-p", "text=not written"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(log), "[10:00] ROLLBACK INITIATED\n[10:05] verified");
}

// files.set_env edits a real env file: the key's line changes (keeping `export`), every other
// line and comment stays, a private backup (0600, outside the work tree) holds the old file, a
// new key is appended, the same value again changes nothing, and neither the file's secrets
// nor a secret value set are in the journal.
TEST(Stdlib, FilesSetEnvEditsARealEnvFile) {
  TempDir d;
  std::string env = d / "app/.env";
  std::filesystem::create_directories(d / "app");
  const std::string original =
      "# database\n"
      "DB_PASSWORD=s3cr3t-Pw-9f8e7d\n"
      "export ROLLBACK_MODE=false\n"
      "\n"
      "# release\n"
      "VERSION=1x2\n";
  write_file(env, original);
  write_file(d / "rb.lua", runbook(
      "path = { type = \"string\" }, key = { type = \"string\" }, value = { type = \"string\", default = \"\" }, "
      "token = { type = \"string\", secret = true, default = \"\" }",
      "local r = files.set_env{ path = p.path, key = p.key, value = p.token ~= \"\" and p.token or p.value }\n"
      "log.info(\"how: \" .. r.result .. \" backup: \" .. tostring(r.backup))"));
  auto set = [&](const std::string& key, const std::string& value, const char* param = "value=") {
    return run_cli({"exec", d / "rb.lua", "-p", "path=" + env, "-p", "key=" + key, "-p", param + value}, env_of(d));
  };
  auto r = set("ROLLBACK_MODE", "true");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("how: set"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(env), "# database\nDB_PASSWORD=s3cr3t-Pw-9f8e7d\nexport ROLLBACK_MODE=true\n\n# release\nVERSION=1x2\n");
  std::smatch m;
  std::string out = r.out;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("backup: (\\S+)"))) << r.out;
  std::string backup = m[1];
  EXPECT_EQ(read_file(backup), original) << backup;
  EXPECT_EQ(mode_of(backup), 0600) << backup;
  EXPECT_EQ(backup.rfind(d / "app", 0), std::string::npos) << "the backup is beside the file: " << backup;

  // A dotted value is compared literally: VERSION=1x2 is not VERSION=1.2.
  r = set("VERSION", "1.2");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("how: set"), std::string::npos) << r.out;
  r = set("VERSION", "1.2");
  EXPECT_NE(r.out.find("how: unchanged"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backup: nil"), std::string::npos) << r.out;

  r = set("API_TOKEN", "tok-77aa99bb-secret", "token=");  // a secret param
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("how: added"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(env),
            "# database\nDB_PASSWORD=s3cr3t-Pw-9f8e7d\nexport ROLLBACK_MODE=true\n\n# release\nVERSION=1.2\n"
            "API_TOKEN=tok-77aa99bb-secret\n");

  std::string j = journal_text(d / "j.db");
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j.find("s3cr3t-Pw-9f8e7d"), std::string::npos) << "the env file's secret is in the journal";
  EXPECT_EQ(j.find("tok-77aa99bb-secret"), std::string::npos) << "the secret value set is in the journal";
  EXPECT_EQ(r.out.find("tok-77aa99bb-secret"), std::string::npos) << r.out;

  // A value sed would read as a command is refused before anything runs.
  r = set("ROLLBACK_MODE", "x/e;id");
  EXPECT_NE(r.code, 0);
  EXPECT_NE((r.out + r.err).find("files.set_env: bad argument 'value'"), std::string::npos) << r.out << r.err;
  EXPECT_NE(read_file(env).find("export ROLLBACK_MODE=true\n"), std::string::npos);
}

// metrics.record keeps 004's rollback metrics in a real JSON file across runs.
TEST(Stdlib, MetricsRecordKeepsARealFile) {
  TempDir d;
  std::string file = d / "records/metrics.json";
  write_file(d / "rb.lua", runbook("path = { type = \"string\" }, cause = { type = \"string\" }, minutes = { type = \"number\" }",
                                   "show(metrics.record{ path = p.path, entry = { cause = p.cause, recovery_time_minutes = p.minutes } })"));
  auto rec = [&](const std::string& cause, const std::string& minutes) {
    return run_cli({"exec", d / "rb.lua", "-p", "path=" + file, "-p", "cause=" + cause, "-p", "minutes=" + minutes}, env_of(d));
  };
  auto r = rec("failed tests", "10");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = rec("failed tests", "20");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = rec("performance", "30");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json m = json::parse(read_file(file));
  ASSERT_EQ(m["rollbacks"].size(), 3u) << m.dump();
  EXPECT_EQ(m["rollbacks"][2]["cause"], "performance");
  EXPECT_EQ(m["statistics"]["total_rollbacks"], 3);
  EXPECT_EQ(m["statistics"]["by_cause"]["failed tests"], 2);
  EXPECT_EQ(m["statistics"]["average_recovery_time"], 20);
  EXPECT_EQ(result_of(r), m["statistics"]) << r.out;

  write_file(d / "read.lua", runbook("path = { type = \"string\" }", "show(metrics.read{ path = p.path })"));
  r = run_cli({"exec", d / "read.lua", "-p", "path=" + file}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(result_of(r)["rollbacks"].size(), 3u) << r.out;
}

// notify.send posts the start notice to a real webhook receiver from the params, and prints it
// into the run's log; notify.users mails nobody when notify_users_to is empty.
TEST(Stdlib, NotifySendsToARealWebhook) {
  TempDir d;
  HttpServer recv(d / "recv");
  write_file(d / "rb.lua", runbook("",
      "local r = notify.send{ kind = \"start\", params = p, fields = { issue = \"checkout answers 500\", severity = \"P1\" } }\n"
      "local u = notify.users{ params = p, fields = { product = \"SizeWise\" } }\n"
      "show({ sent = r.sent, users_sent = u.sent, subject = r.subject })"));
  auto r = run_cli({"exec", d / "rb.lua", "-p", "notify_webhook=" + recv.url("/hook/T0KEN"), "-p", "notify_format=generic"},
                   env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto got = posts(d / "recv");
  ASSERT_EQ(got.size(), 1u) << r.out;
  std::string text = json::parse(got[0]["body"].get<std::string>())["text"];
  EXPECT_NE(text.find("[ACTION] Initiating Rollback - checkout answers 500"), std::string::npos) << text;
  EXPECT_NE(text.find("Severity: P1"), std::string::npos) << text;
  EXPECT_EQ(result_of(r)["sent"], 1) << r.out;
  EXPECT_EQ(result_of(r)["users_sent"], 0) << r.out;
  EXPECT_NE(r.out.find("---- [ACTION] Initiating Rollback - checkout answers 500 ----"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SizeWise - Brief Service Interruption Resolved"), std::string::npos) << r.out;
  EXPECT_EQ(journal_text(d / "j.db").find("T0KEN"), std::string::npos) << "the webhook's token is in the journal";

  // The receiver down: a warning, the run goes on; with notify_strict it fails.
  int dead = free_port();
  std::string hook = "notify_webhook=http://127.0.0.1:" + std::to_string(dead) + "/hook";
  r = run_cli({"exec", d / "rb.lua", "-p", hook}, env_of(d));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("notice not sent by webhook"), std::string::npos) << r.out;
  r = run_cli({"exec", d / "rb.lua", "-p", hook, "-p", "notify_strict=true"}, env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
}

// Every exported function, called wrong, fails naming the call and the argument (exit 1, the
// step's error), before it touches anything.
TEST(Stdlib, BadArgumentsNameTheCall) {
  TempDir d;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"checks.endpoints{ urls = 5 }", "checks.endpoints: bad argument 'urls' (list of URLs expected, got number)"},
      {"checks.wait_healthy{ urls = { 'http://127.0.0.1:1/' }, timeout = 'soon' }",
       "checks.wait_healthy: bad argument 'timeout' (duration like \"30s\" expected, got string 'soon')"},
      {"checks.wait_endpoints{ urls = { 'ftp://x' } }", "checks.wait_endpoints: bad argument 'urls' (list of URLs expected"},
      {"checks.log_errors{ path = 1 }", "checks.log_errors: bad argument 'path' (path expected, got number)"},
      {"monitor.watch{ urls = {}, duration = '1m', interval = 'often' }",
       "monitor.watch: bad argument 'interval' (duration like \"30s\" expected, got string 'often')"},
      {"monitor.resources{ max_disk_pct = '90%' }", "monitor.resources: bad argument 'max_disk_pct' (number expected"},
      {"metrics.record{ path = '/tmp/x.json' }", "metrics.record: bad argument 'entry'"},
      {"metrics.read{ paht = '/tmp/x.json' }", "metrics.read: unknown argument 'paht' (did you mean 'path'?)"},
      {"files.append{ path = '/tmp/x', text = {} }", "files.append: bad argument 'text' (string expected"},
      {"files.set_env{ path = '/tmp/.env', key = 'A-B', value = '1' }", "files.set_env: bad argument 'key'"},
      {"notify.send{ kind = 'begin' }", "notify.send: bad argument 'kind'"},
      {"notify.users{ fields = 'x' }", "notify.users: bad argument 'fields' (table of name = value expected, got string 'x')"},
      {"notify.build{ kind = 3 }", "notify.build: bad argument 'kind' (string expected, got number)"},
      {"notify.print{ title = 'x' }", "notify.print: bad argument 'lines' (list of strings expected, got no value)"},
      {"notify.with_params(5)", "notify.with_params: bad argument #1 (a table of params expected, got number)"},
      {"require('runbook.util').seconds{ duration = '5 min' }", "util.seconds: bad argument 'duration'"},
      {"require('runbook.util').check_args{ call = 'x', args = {}, spec = 3 }", "util.check_args: bad argument 'spec'"},
  };
  int i = 0;
  for (const auto& [call, want] : cases) {
    std::string file = d / ("bad" + std::to_string(++i) + ".lua");
    write_file(file, runbook("", call));
    auto r = run_cli({"exec", file}, env_of(d));
    EXPECT_EQ(r.code, 1) << call << "\n" << r.out << r.err;
    EXPECT_NE((r.out + r.err).find(want), std::string::npos) << call << "\n" << r.out << r.err;
    // The error points at the runbook's line, not inside the stdlib.
    EXPECT_NE((r.out + r.err).find(file + ":9:"), std::string::npos) << call << "\n" << r.out << r.err;
  }
}

// `cmake --install` puts the modules under share/runbook/stdlib/runbook/, and a runbook run by
// the installed binary with that directory as its stdlib requires them.
TEST(Stdlib, InstalledLayoutFindsTheModules) {
  TempDir d;
  std::string build = std::filesystem::path(RUNBOOK_BIN).parent_path().string();
  std::string cmd = "cmake --install '" + build + "' --prefix '" + d / "prefix" + "' > '" + d / "install.log" + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(d / "install.log");
  std::string lib = d / "prefix/share/runbook/stdlib";
  for (const char* m : {"checks", "monitor", "metrics", "files", "notify", "util", "test"})
    EXPECT_TRUE(std::filesystem::exists(lib + "/runbook/" + m + ".lua")) << m;
  write_file(d / "rb.lua", runbook("", "log.info(\"loaded: \" .. checks.__api.module .. \" \" .. #notify.__api.functions)"));
  std::string run = "RUNBOOK_STDLIB='" + lib + "' RUNBOOK_JOURNAL='" + d / "j.db" + "' '" + d / "prefix/bin/runbook" +
                    "' exec '" + d / "rb.lua" + "' > '" + d / "run.log" + "' 2>&1";
  EXPECT_EQ(std::system(run.c_str()), 0) << read_file(d / "run.log");
  EXPECT_NE(read_file(d / "run.log").find("loaded: runbook.checks"), std::string::npos) << read_file(d / "run.log");
}
