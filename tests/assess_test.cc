// runbooks/assess.lua, live, branch by branch: every level of every document's decision rule
// (000 RED / YELLOW / ORANGE / GREEN, 001 ROLLBACK / DISABLE FLAG / INVESTIGATE, 002 P0 / P1 /
// P1? / P2 / P3, 004 CRITICAL / HIGH / MEDIUM / LOW) is reached through the measure the document
// names, against a real application that misbehaves as asked (tests/support/assess_server.py: a
// failing login, a slow answer, an exact error rate, a long queue), a PostgreSQL that does not
// answer, a damaged SQLite file, a failing test suite, a process that grew. Each case checks the
// level, the reason with its number, that the assessment changed nothing, and the report's
// trigger.
#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace fs = std::filesystem;

namespace {

const std::string kSupport = RUNBOOK_TEST_SUPPORT_DIR;

struct AssessCase {
  std::string label, procedure;
  // Parameters; {url} is the misbehaving app, {dead_pg} a PostgreSQL DSN nobody answers,
  // {log} a log with 3 error lines, {bad_db} a damaged SQLite file, {good_db} a sound one,
  // {dir} the test's directory (npm-audit.json, pip-audit.json), {tag} the command-line tag of a python3 process holding about 40 MiB.
  std::vector<std::pair<std::string, std::string>> params;
  std::string level, reason;  // "Level: <level>" and a piece of "Because: ..."
};

void PrintTo(const AssessCase& c, std::ostream* os) { *os << c.procedure << " [" << c.label << "]"; }

std::string case_name(const ::testing::TestParamInfo<AssessCase>& i) {
  std::string n = i.param.procedure + "_" + i.param.label;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

using P = std::vector<std::pair<std::string, std::string>>;

// Latency cases give the baseline and the delay so that the band holds with room for a loaded
// machine: the delay is the lower bound of what is measured, and each band allows 130 ms or more
// above it (samples=2: one slow request cannot be averaged away, and two cost little).
const std::vector<AssessCase> kCases = {
    // 000 "Rollback Triggers".
    {"GREEN", "dependencies", {{"health", "{url}/ok"}, {"sample_url", "{url}/ok"}, {"samples", "10"}},
     "GREEN", "no trigger condition holds"},
    {"RED_db", "dependencies", {{"health", "{url}/ok"}, {"pg_dsn", "{dead_pg}"}}, "RED", "database connection lost"},
    {"RED_auth", "dependencies", {{"health", "{url}/ok"}, {"auth_url", "{url}/auth/fail"}}, "RED", "authentication broken"},
    {"RED_endpoints", "dependencies", {{"endpoints", "{url}/ok,{url}/fail"}}, "RED", "API endpoints failing (%) 50 > 5"},
    {"RED_slowdown", "dependencies",
     {{"sample_url", "{url}/delay/1500"}, {"samples", "2"}, {"baseline_p95_ms", "1000"}},
     "RED", "performance degradation (%)"},
    {"YELLOW_tests", "dependencies",
     {{"health", "{url}/ok"}, {"test_cmd", "python3,-c,print('2 failed 8 passed')"}}, "YELLOW", "tests failing (%) 20 > 10"},
    {"YELLOW_slowdown", "dependencies",
     {{"sample_url", "{url}/delay/2240"}, {"samples", "2"}, {"baseline_p95_ms", "2000"}},
     "YELLOW", "performance degradation (%)"},
    {"YELLOW_memory", "dependencies",
     {{"process_match", "{tag}"}, {"baseline_rss_mb", "10"}}, "YELLOW", "memory increase (%)"},
    {"YELLOW_error_rate", "dependencies",
     {{"sample_url", "{url}/rate/5"}, {"samples", "20"}, {"baseline_error_rate", "0"}},
     "YELLOW", "error rate increase (percentage points) 5 > 2"},
    {"YELLOW_audit", "dependencies",
     {{"health", "{url}/ok"}, {"audit_cmd", "cat,{dir}/npm-audit.json"}, {"baseline_vulnerabilities", "1"}},
     "YELLOW", "security concerns: new vulnerabilities in the audit 2 > 0"},
    {"ORANGE_user_reports", "dependencies", {{"health", "{url}/ok"}, {"user_reports", "3"}}, "ORANGE",
     "multiple user reports 3 > 1"},
    {"ORANGE_integrations", "dependencies", {{"health", "{url}/ok"}, {"integrations", "{url}/ok,{url}/fail"}},
     "ORANGE", "third-party integration problems: failing (%) 50 > 0"},
    {"ORANGE_decline", "dependencies",
     {{"sample_url", "{url}/delay/4240"}, {"samples", "2"}, {"baseline_p95_ms", "4000"}},
     "ORANGE", "gradual performance decline (%)"},
    {"ORANGE_log", "dependencies", {{"log_file", "{log}"}, {"baseline_log_errors", "1"}},
     "ORANGE", "more error lines in the log than usual"},
    // 001 "Rollback Decision Matrix".
    {"ROLLBACK_down", "feature-flags", {{"health", "{url}/fail"}}, "ROLLBACK", "the application does not answer"},
    {"ROLLBACK_auth", "feature-flags", {{"health", "{url}/ok"}, {"auth_url", "{url}/auth/fail"}},
     "ROLLBACK", "users cannot authenticate"},
    {"ROLLBACK_corruption", "feature-flags", {{"health", "{url}/ok"}, {"sqlite_db", "{bad_db}"}},
     "ROLLBACK", "data corruption: the database fails its integrity check"},
    {"ROLLBACK_slowdown", "feature-flags",
     {{"sample_url", "{url}/delay/1700"}, {"samples", "2"}, {"baseline_p95_ms", "1000"}},
     "ROLLBACK", "performance degradation (%)"},
    {"ROLLBACK_audit", "feature-flags", {{"health", "{url}/ok"}, {"audit_cmd", "cat,{dir}/pip-audit.json"}},
     "ROLLBACK", "security vulnerability introduced: new in the audit 1 > 0"},
    {"DISABLE_user_reports", "feature-flags", {{"health", "{url}/ok"}, {"user_reports", "4"}}, "DISABLE FLAG",
     "several user reports (UI/UX issues, edge cases) 4 > 1"},
    {"DISABLE_endpoint", "feature-flags",
     {{"health", "{url}/ok"}, {"endpoints", "{url}/ok,{url}/ok,{url}/ok,{url}/fail"}, {"sqlite_db", "{good_db}"}},
     "DISABLE FLAG", "feature endpoints failing (%) 25 > 0"},
    {"DISABLE_slowdown", "feature-flags",
     {{"sample_url", "{url}/delay/1200"}, {"samples", "2"}, {"baseline_p95_ms", "1000"}},
     "DISABLE FLAG", "performance impact (%)"},
    {"DISABLE_log", "feature-flags", {{"health", "{url}/ok"}, {"log_file", "{log}"}, {"baseline_log_errors", "0"}},
     "DISABLE FLAG", "more error lines in the log than usual"},
    {"INVESTIGATE", "feature-flags", {{"health", "{url}/ok"}, {"log_file", "{log}"}, {"baseline_log_errors", "3"}},
     "INVESTIGATE", "no trigger condition holds"},
    // 002 "Rollback Decision Matrix" and "Decision Flowchart".
    {"P0_db", "node-api", {{"health", "{url}/ok"}, {"pg_dsn", "{dead_pg}"}}, "P0", "database connection failed"},
    {"P1_error_rate", "node-api", {{"health", "{url}/ok"}, {"sample_url", "{url}/rate/25"}, {"samples", "20"}},
     "P1", "error rate (%) 25 > 10"},
    {"P1maybe_error_rate", "node-api", {{"health", "{url}/ok"}, {"sample_url", "{url}/rate/10"}, {"samples", "20"}},
     "P1?", "error rate (%) 10 in (5, 10]"},
    {"P2_slowdown", "node-api",
     {{"health", "{url}/ok"}, {"sample_url", "{url}/delay/1200"}, {"samples", "2"}, {"baseline_p95_ms", "500"}},
     "P2", "response time over 2x the baseline"},
    {"P2_feature", "node-api", {{"health", "{url}/ok"}, {"endpoints", "{url}/ok,{url}/fail"}},
     "P2", "a feature is broken: endpoints failing (%) 50 > 0"},
    {"P2_queue", "node-api", {{"health", "{url}/ok"}, {"queue_stats", "{url}/queue/60"}},
     "P2", "queue length over the target of 50"},
    {"P3", "node-api", {{"health", "{url}/ok"}, {"queue_stats", "{url}/queue/3"}}, "P3", "no trigger condition holds"},
    // 004 "Rollback Decision Matrix".
    {"CRITICAL_down", "sprint", {{"health", "{url}/fail"}}, "CRITICAL", "production down"},
    {"CRITICAL_db", "sprint", {{"health", "{url}/ok"}, {"pg_dsn", "{dead_pg}"}}, "CRITICAL",
     "data at risk: the database does not answer"},
    {"CRITICAL_corruption", "sprint", {{"health", "{url}/ok"}, {"sqlite_db", "{bad_db}"}}, "CRITICAL",
     "data at risk: the database fails its integrity check"},
    {"HIGH_tests", "sprint",
     {{"health", "{url}/ok"}, {"test_cmd", "python3,-c,print('1 failed 39 passed')"}}, "HIGH", "tests failing (%) 2.5 > 0"},
    {"HIGH_endpoints", "sprint", {{"health", "{url}/ok"}, {"endpoints", "{url}/ok,{url}/fail"}}, "HIGH",
     "major features broken: endpoints failing (%) 50 > 0"},
    {"MEDIUM_slowdown", "sprint",
     {{"health", "{url}/ok"}, {"sample_url", "{url}/delay/1300"}, {"samples", "2"}, {"baseline_p95_ms", "1000"}},
     "MEDIUM", "performance degradation (%)"},
    {"MEDIUM_log", "sprint", {{"health", "{url}/ok"}, {"log_file", "{log}"}, {"baseline_log_errors", "2"}},
     "MEDIUM", "more error lines in the log than usual"},
    {"MEDIUM_users", "sprint", {{"health", "{url}/ok"}, {"user_reports", "2"}}, "MEDIUM",
     "users affected: several reports (minor bugs) 2 > 1"},
    {"LOW", "sprint",
     {{"health", "{url}/ok"}, {"sqlite_db", "{good_db}"}, {"test_cmd", "python3,-c,print('40 passed')"}},
     "LOW", "no trigger condition holds"},
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

class Assess : public ::testing::TestWithParam<AssessCase> {
 protected:
  void SetUp() override {
    port_ = free_port();
    server_ = std::make_unique<Child>(
        std::vector<std::string>{"python3", kSupport + "/assess_server.py", std::to_string(port_)}, std::map<std::string, std::string>{},
        dir_ / "server.log");
    ASSERT_TRUE(wait_for_port(port_, 15000)) << "assess_server.py did not listen";
    // The log: 3 error lines among others.
    std::ofstream(dir_ / "app.log") << "2026-12-03 10:00:00 INFO started\n"
                                    << "2026-12-03 10:00:01 ERROR db timeout\n"
                                    << "2026-12-03 10:00:02 INFO request\n"
                                    << "2026-12-03 10:00:03 ERROR Exception in handler\n"
                                    << "2026-12-03 10:00:04 ERROR validation failed\n";
    // A sound SQLite database, and a copy whose header is overwritten.
    os::ProcessSpec s;
    s.argv = {"python3", "-c",
              "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE t(a)'); "
              "c.execute('INSERT INTO t VALUES (1)'); c.commit()",
              dir_ / "good.db"};
    s.timeout = std::chrono::seconds(30);
    ASSERT_EQ(os::run_process(s).code, 0) << "python3's sqlite3 could not make good.db";
    fs::copy_file(dir_ / "good.db", dir_ / "bad.db");
    {
      std::fstream f(dir_ / "bad.db", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(0);
      f << "garbage garbage garbage";
    }
    // What `npm audit --json` and `pip-audit -f json` print (their documented shapes, trimmed):
    // 3 vulnerabilities for npm, 1 for pip.
    std::ofstream(dir_ / "npm-audit.json")
        << R"({"auditReportVersion": 2, "vulnerabilities": {"lodash": {"name": "lodash", "severity": "high"}},
              "metadata": {"vulnerabilities": {"info": 0, "low": 1, "moderate": 0, "high": 2, "critical": 0,
              "total": 3}, "dependencies": {"prod": 12, "total": 12}}})";
    std::ofstream(dir_ / "pip-audit.json")
        << R"({"dependencies": [{"name": "flask", "version": "2.0.0", "vulns": []},
              {"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]}],
              "fixes": []})";
    tag_ = "assess-memory-" + std::to_string(port_);
    // A dead PostgreSQL: a port nothing listens on.
    dead_pg_ = "postgresql://runbook@127.0.0.1:" + std::to_string(free_port()) + "/app?connect_timeout=3";
  }
  void TearDown() override {
    if (hog_) hog_->stop();
  }

  std::string subst(const std::string& v) {
    std::string s = replace_all(v, "{url}", "http://127.0.0.1:" + std::to_string(port_));
    s = replace_all(s, "{dead_pg}", dead_pg_);
    s = replace_all(s, "{log}", dir_ / "app.log");
    s = replace_all(s, "{bad_db}", dir_ / "bad.db");
    s = replace_all(s, "{good_db}", dir_ / "good.db");
    s = replace_all(s, "{tag}", tag_);
    s = replace_all(s, "{dir}", dir_.path());
    return s;
  }

  // A python3 holding about 40 MiB of written memory, its argv tagged. Ready once it has written
  // the file after allocating: the RSS of the pid alone is no sign, because between fork and exec
  // the child is a copy of this test binary, which under ASan is itself well over 35 MiB.
  void start_hog() {
    const std::string ready = dir_ / "hog.ready";
    hog_ = std::make_unique<Child>(std::vector<std::string>{
        "python3", "-c",
        "import sys, time\nx = bytearray(40 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
        "open(sys.argv[2], 'w').write('ready')\ntime.sleep(120)",
        tag_, ready});
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < until) {
      if (std::filesystem::exists(ready)) {
        std::ifstream st("/proc/" + std::to_string(hog_->pid()) + "/status");
        std::string line;
        long kb = 0;
        while (std::getline(st, line))
          if (line.rfind("VmRSS:", 0) == 0) kb = std::stol(line.substr(6));
        ASSERT_GT(kb, 35 * 1024) << "the memory hog is ready but holds only " << kb << " KiB";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the memory hog never allocated its 40 MiB";
  }

  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Child> server_, hog_;
  std::string tag_, dead_pg_;
};

}  // namespace

TEST_P(Assess, NamesTheLevelAndItsReasons) {
  const AssessCase& c = GetParam();
  std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/assess.lua", "-p",
                                   "procedure=" + c.procedure, "--journal", dir_ / "j.db"};
  bool memory = false;
  for (const auto& [k, v] : c.params) {
    args.push_back("-p");
    args.push_back(k + "=" + subst(v));
    memory = memory || v.find("{tag}") != std::string::npos;
  }
  if (memory) start_hog();
  if (HasFatalFailure()) return;
  auto bytes = [&](const char* f) {
    std::ifstream in(dir_ / f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::map<std::string, std::string> before;
  for (const char* f : {"app.log", "good.db", "bad.db"}) before[f] = bytes(f);
  auto r = run_cli(args, {{"HOME", dir_.path()}, {"XDG_STATE_HOME", dir_ / "xdg"}, {"RUNBOOK_STATE_DIR", dir_ / "state"}}, 120);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Level: " + c.level + "\n"), std::string::npos) << r.out;
  size_t because = r.out.find("Because: ");
  ASSERT_NE(because, std::string::npos) << r.out;
  EXPECT_NE(r.out.find(c.reason, because), std::string::npos) << "want a reason with \"" << c.reason << "\":\n" << r.out;
  // The databases and the log are as they were (only the journal and state may be new).
  for (const char* f : {"app.log", "good.db", "bad.db"}) EXPECT_EQ(bytes(f), before[f]) << f << " changed";
  // `runbook report` shows the verdict as the run's trigger.
  auto rep = run_cli({"report", "1", "--journal", dir_ / "j.db"}, {{"HOME", dir_.path()}});
  ASSERT_EQ(rep.code, 0) << rep.out << rep.err;
  EXPECT_NE(rep.out.find("Trigger: " + c.level + ": "), std::string::npos) << rep.out;
}

INSTANTIATE_TEST_SUITE_P(AssessMatrix, Assess, ::testing::ValuesIn(kCases), case_name);
