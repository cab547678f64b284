// The hostile corpus: every tests/hostile/*.lua is run by the real binary under a hard timeout.
// Each file's header says what it tests and how it must end:
//   -- expect: exit=1|2 within=4s     exit statuses allowed; wall-clock bound (step timeout + 2 s)
//   -- args: -p url={url}             after `exec FILE`; {url} is the server, {rep:TEXT:N} TEXT*N
//   -- server: brackets|object|wide|echo|stall|trickle   tests/support/hostile_http.py in that mode
//   -- output: TEXT / -- output-not: TEXT           in (not in) stdout+stderr
//   -- interrupt: 1s                  SIGINT (Ctrl-C) that long after the start
//   -- target: PATH                   exec PATH (relative to the runbook's dir) instead of the file
//   -- file: REL = CONTENT / -- symlink: REL -> TARGET / -- fifo: REL   made beside the runbook
//   -- journal-max-mb: N              the journal (db + wal) stays under N MiB
// Whatever the file, the process must exit (not die by a signal), leave no process of its group
// behind and no run "running" in the journal, and print no sanitizer report.
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "os/process.h"
#include "support/support.h"

namespace fs = std::filesystem;
using namespace rb::test;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kCorpus = std::string(RUNBOOK_SOURCE_DIR) + "/tests/hostile";

struct Case {
  std::string name, path, test;
  std::vector<int> exits;
  double within_s = 0;
  std::vector<std::string> args, output, output_not, files, symlinks, fifos;
  std::string server, target;
  double interrupt_s = -1;
  double journal_max_mb = 0;
  std::string header_error;  // a malformed header fails the case
};

double seconds(const std::string& text) {
  // "4s", "1.5s", "500ms"
  if (text.size() > 2 && text.substr(text.size() - 2) == "ms") return std::stod(text) / 1000.0;
  return std::stod(text);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t i = s.find_first_not_of(' ');
  return i == std::string::npos ? "" : s.substr(i);
}

Case parse_case(const fs::path& p) {
  Case c;
  c.name = p.stem().string();
  c.path = p.string();
  std::string text = read_file(c.path);
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text = text.substr(3);
  std::istringstream in(text);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (first && line.rfind("#!", 0) == 0) {
      first = false;
      continue;
    }
    first = false;
    if (line.rfind("--", 0) != 0) break;  // the header ends at the first line of code
    if (line.rfind("-- ", 0) != 0) continue;
    size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string key = line.substr(3, colon - 3), value = trim(line.substr(colon + 2));
    try {
      if (key == "test") {
        c.test = value;
      } else if (key == "expect") {
        std::istringstream ws(value);
        std::string part;
        while (ws >> part) {
          if (part.rfind("exit=", 0) == 0) {
            std::istringstream es(part.substr(5));
            std::string n;
            while (std::getline(es, n, '|')) c.exits.push_back(std::stoi(n));
          } else if (part.rfind("within=", 0) == 0) {
            c.within_s = seconds(part.substr(7));
          }
        }
      } else if (key == "args") {
        std::istringstream as(value);
        std::string a;
        while (as >> a) c.args.push_back(a);
      } else if (key == "server") {
        c.server = value;
      } else if (key == "output") {
        c.output.push_back(value);
      } else if (key == "output-not") {
        c.output_not.push_back(value);
      } else if (key == "interrupt") {
        c.interrupt_s = seconds(value);
      } else if (key == "target") {
        c.target = value;
      } else if (key == "file") {
        c.files.push_back(value);
      } else if (key == "symlink") {
        c.symlinks.push_back(value);
      } else if (key == "fifo") {
        c.fifos.push_back(value);
      } else if (key == "journal-max-mb") {
        c.journal_max_mb = std::stod(value);
      }
    } catch (const std::exception& e) {
      c.header_error = "bad header line '" + line + "': " + e.what();
    }
  }
  if (c.header_error.empty() && (c.exits.empty() || c.within_s <= 0))
    c.header_error = "no '-- expect: exit=N within=Ns' header";
  if (c.header_error.empty() && c.test.empty()) c.header_error = "no '-- test: ...' header";
  return c;
}

std::vector<Case> corpus() {
  std::vector<Case> cases;
  if (!fs::is_directory(kCorpus)) return cases;
  for (const auto& e : fs::directory_iterator(kCorpus))
    if (e.path().extension() == ".lua") cases.push_back(parse_case(e.path()));
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.name < b.name; });
  return cases;
}

// {url} and {rep:TEXT:N}.
std::string expand(std::string a, const std::string& url) {
  for (size_t at; (at = a.find("{url}")) != std::string::npos;) a.replace(at, 5, url);
  for (size_t at; (at = a.find("{rep:")) != std::string::npos;) {
    size_t end = a.find('}', at);
    std::string spec = a.substr(at + 5, end - at - 5);
    size_t colon = spec.rfind(':');
    std::string unit = spec.substr(0, colon), out;
    for (long n = std::stol(spec.substr(colon + 1)); n > 0; --n) out += unit;
    a.replace(at, end - at + 1, out);
  }
  return a;
}

// The sanitizer build runs several times slower: its bounds are doubled there. The deadlines
// the engine keeps are wall-clock and stay the same, so this only pays the slower start.
// RUNBOOK_TEST_TIME_SCALE overrides it (a loaded machine).
double time_scale() {
  const char* s = std::getenv("RUNBOOK_TEST_TIME_SCALE");
  if (s && *s) return std::atof(s);
#ifdef RUNBOOK_SANITIZED
  return 2.0;
#else
  return 1.0;
#endif
}

struct Outcome {
  bool exited = false;
  int code = -1, signal = 0;
  bool killed = false;  // still running at the hard limit
  double elapsed_s = 0;
  bool leftovers = false;
};

Outcome run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& cwd, const std::string& out, const std::string& err,
            double interrupt_s, double hard_limit_s) {
  std::vector<std::string> strings = argv;
  std::vector<char*> a;
  for (auto& s : strings) a.push_back(s.data());
  a.push_back(nullptr);
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
#ifndef RUNBOOK_SANITIZED
    // A runner that reads without bound (exec /dev/zero did: 3.6 GB in 5 s) must not take the
    // machine with it; the sanitizers reserve terabytes of address space, so not there.
    struct rlimit as{3ul << 30, 3ul << 30};
    ::setrlimit(RLIMIT_AS, &as);
#endif
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  Outcome r;
  bool interrupted = false;
  int status = 0;
  for (;;) {
    double t = std::chrono::duration<double>(Clock::now() - t0).count();
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.elapsed_s = t;
      break;
    }
    if (interrupt_s >= 0 && !interrupted && t >= interrupt_s) {
      ::kill(pid, SIGINT);
      interrupted = true;
    }
    if (t >= hard_limit_s) {
      r.killed = true;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.elapsed_s = t;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status)) {
    r.exited = true;
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  // Anything still in the runbook's process group outlived it.
  if (!r.killed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r.leftovers = ::kill(-pid, 0) == 0;
  }
  ::kill(-pid, SIGKILL);
  return r;
}

// Runs that the journal still calls "running", and how many runs it has at all.
std::string journal_problems(const std::string& db, int* runs) {
  *runs = 0;
  if (!fs::exists(db)) return "";
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string m = "cannot open the journal " + db + ": " + sqlite3_errmsg(h);
    sqlite3_close(h);
    return m;
  }
  sqlite3_busy_timeout(h, 2000);
  std::string problems;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, "SELECT id, runbook, outcome FROM runs", -1, &st, nullptr) != SQLITE_OK) {
    problems = std::string("journal query failed: ") + sqlite3_errmsg(h);
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      ++*runs;
      std::string outcome = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
      if (outcome == "running")
        problems += "run #" + std::to_string(sqlite3_column_int64(st, 0)) +
                    " is left 'running' in the journal; ";
    }
    if (rc != SQLITE_DONE) problems += std::string("journal read failed: ") + sqlite3_errmsg(h);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return problems;
}

std::string head(const std::string& s, size_t n = 1500) {
  return s.size() <= n ? s : s.substr(0, n) + "... (" + std::to_string(s.size()) + " bytes)";
}

std::string signal_name(int sig) {
  const char* n = ::sigabbrev_np(sig);
  return n ? std::string("SIG") + n : std::to_string(sig);
}

// gtest prints a parameter with this: the file, not the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << "tests/hostile/" << c.name << ".lua"; }

class Hostile : public ::testing::TestWithParam<Case> {};

TEST_P(Hostile, EndsCleanly) {
  const Case& c = GetParam();
  ASSERT_TRUE(c.header_error.empty()) << c.path << ": " << c.header_error;
  std::string python = rb::os::which("python3");
  if (!c.server.empty()) {
    ASSERT_FALSE(python.empty()) << "python3 is needed for the hostile servers: apt-get install python3";
  }

  TempDir t;
  const std::string dir = t / "rb", home = t / "home", journal = t / "journal.db";
  fs::create_directories(dir);
  fs::create_directories(home);
  const std::string file = dir + "/" + fs::path(c.path).filename().string();
  fs::copy_file(c.path, file);
  for (const auto& f : c.files) {
    size_t eq = f.find(" = ");
    ASSERT_NE(eq, std::string::npos) << "bad '-- file:' header: " << f;
    fs::path p = fs::path(dir) / f.substr(0, eq);
    fs::create_directories(p.parent_path());
    write_file(p.string(), f.substr(eq + 3) + "\n");
  }
  for (const auto& s : c.symlinks) {
    size_t arrow = s.find(" -> ");
    ASSERT_NE(arrow, std::string::npos) << "bad '-- symlink:' header: " << s;
    fs::create_symlink(s.substr(arrow + 4), fs::path(dir) / s.substr(0, arrow));
  }
  for (const auto& f : c.fifos) ASSERT_EQ(::mkfifo((dir + "/" + f).c_str(), 0644), 0) << f;

  std::unique_ptr<Child> server;
  std::string url;
  if (!c.server.empty()) {
    int port = free_port();
    server = std::make_unique<Child>(std::vector<std::string>{
        python, std::string(RUNBOOK_TEST_SUPPORT_DIR) + "/hostile_http.py", std::to_string(port),
        c.server});
    ASSERT_TRUE(wait_for_port(port, 10000)) << "hostile_http.py " << c.server << " did not start";
    url = "http://127.0.0.1:" + std::to_string(port);
  }

  std::vector<std::string> argv = {RUNBOOK_BIN, "exec", c.target.empty() ? file : c.target,
                                   "--journal", journal, "--no-color"};
  for (const auto& a : c.args) argv.push_back(expand(a, url));
  std::map<std::string, std::string> env = {{"NO_COLOR", "1"}, {"HOME", home},
                                            {"XDG_STATE_HOME", home + "/state"},
                                            {"RUNBOOK_JOURNAL", journal}};
  const double within = c.within_s * time_scale();
  Outcome r = run(argv, env, dir, t / "stdout", t / "stderr", c.interrupt_s * time_scale(), within + 3);
  if (server) server->stop();

  const std::string out = read_file(t / "stdout"), err = read_file(t / "stderr");
  std::string expected;
  for (int e : c.exits) expected += (expected.empty() ? "" : "|") + std::to_string(e);
  std::ostringstream verdict;
  verdict << "hostile/" << c.name << ".lua (" << c.test << "): ";
  if (r.killed)
    verdict << "still running after " << r.elapsed_s << " s: killed";
  else if (!r.exited)
    verdict << "ended by " << signal_name(r.signal) << " after " << r.elapsed_s << " s";
  else
    verdict << "exit " << r.code << " after " << r.elapsed_s << " s";
  verdict << "; expected exit " << expected << " within " << within << " s";

  std::vector<std::string> failures;
  if (r.killed)
    failures.push_back("did not end: still running " + std::to_string(r.elapsed_s) + " s after start");
  else if (!r.exited)
    failures.push_back("ended by signal " + signal_name(r.signal) + ", not by exit");
  else if (std::find(c.exits.begin(), c.exits.end(), r.code) == c.exits.end())
    failures.push_back("exit " + std::to_string(r.code) + ", expected " + expected);
  if (!r.killed && r.elapsed_s > within)
    failures.push_back("took " + std::to_string(r.elapsed_s) + " s, more than " + std::to_string(within) + " s");
  if (r.leftovers) failures.push_back("left processes of its group running after it exited");
  for (const char* report : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"})
    if (err.find(report) != std::string::npos)
      failures.push_back(std::string("sanitizer report (") + report + ")");
  int runs = 0;
  std::string jp = journal_problems(journal, &runs);
  if (!jp.empty()) failures.push_back(jp);
  if (r.exited && r.code == 1 && runs == 0)
    failures.push_back("exit 1 (the runbook failed) but the journal has no run");
  for (const auto& o : c.output)
    if (out.find(o) == std::string::npos && err.find(o) == std::string::npos)
      failures.push_back("output lacks '" + o + "'");
  for (const auto& o : c.output_not)
    if (out.find(o) != std::string::npos || err.find(o) != std::string::npos)
      failures.push_back("output contains '" + o + "'");
  if (c.journal_max_mb > 0) {
    double bytes = 0;
    for (const auto& p : {journal, journal + "-wal"})
      if (fs::exists(p)) bytes += static_cast<double>(fs::file_size(p));
    if (bytes > c.journal_max_mb * 1024 * 1024)
      failures.push_back("journal grew to " + std::to_string(bytes / 1048576) + " MiB, over " +
                         std::to_string(c.journal_max_mb) + " MiB");
  }
  if (failures.empty()) std::printf("%s\n", verdict.str().c_str());
  std::string all;
  for (const auto& f : failures) all += "\n  - " + f;
  EXPECT_TRUE(failures.empty()) << verdict.str() << all << "\n--- stderr:\n"
                                << head(err) << "\n--- stdout:\n" << head(out);
}

// The corpus must not shrink unnoticed (the issue asks for at least 60 runbooks).
TEST(HostileCorpus, HasEnoughCases) {
  auto cases = corpus();
  EXPECT_GE(cases.size(), 70u) << "tests/hostile has only " << cases.size() << " runbooks";
  for (const auto& c : cases) EXPECT_TRUE(c.header_error.empty()) << c.path << ": " << c.header_error;
}

INSTANTIATE_TEST_SUITE_P(Corpus, Hostile, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
