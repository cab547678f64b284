#include "support/support.h"

#include <cstdio>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/hash.h"
#include "core/strings.h"
#include "dispatch/args.h"
#include "dispatch/context.h"
#include "dispatch/registry.h"
#include "os/process.h"

namespace rb::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "runbook-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

bool wait_for_port(int port, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  return false;
}

std::vector<json> CliResult::events() const {
  std::vector<json> out;
  for (const auto& line : split(this->out, '\n')) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(j);
  }
  return out;
}

CliResult run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                  int timeout_s) {
  os::ProcessSpec spec;
  spec.argv = {RUNBOOK_BIN};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = env;
  spec.env.emplace("NO_COLOR", "1");
  spec.timeout = std::chrono::seconds(timeout_s);
  // The runbook may start services (the process backend) meant to outlive it, as from a shell.
  spec.detached = true;
  auto r = os::run_process(spec);
  CliResult c;
  c.code = r.code;
  c.out = r.stdout_text;
  c.err = r.stderr_text;
  if (r.timed_out) c.err += "\n[test: runbook timed out]";
  return c;
}

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             const std::string& log) {
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setsid();
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    int fd = ::open(log.empty() ? "/dev/null" : log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
}

Child::~Child() { stop(); }

void Child::stop() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      ::kill(-pid_, SIGKILL);
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

namespace {
const std::string& made(const std::string& dir) {
  fs::create_directories(dir);
  return dir;
}
}  // namespace

HttpServer::HttpServer(const std::string& dir)
    : dir_(made(dir)),
      port_(free_port()),
      child_({"python3", std::string(RUNBOOK_TEST_SUPPORT_DIR) + "/http_server.py",
              std::to_string(port_), dir}) {
  if (!wait_for_port(port_, 10000)) throw std::runtime_error("test HTTP server did not start");
}

std::string HttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void HttpServer::set_status(int status) { write_file(dir_ + "/status", std::to_string(status)); }

int HttpServer::changing_requests() const {
  std::string log = read_file(dir_ + "/requests.log");
  int n = 0;
  for (char c : log) n += c == '\n';
  return n;
}

std::vector<std::string> files_containing(const std::string& dir, const std::string& needle,
                                          const std::string& skip) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string path = e.path().string();
    if (!e.is_regular_file() || (!skip.empty() && path.find(skip) != std::string::npos)) continue;
    if (read_file(path).find(needle) != std::string::npos) out.push_back(path);
  }
  return out;
}

std::string sha256_tree(const std::string& dir) {
  std::vector<std::string> entries;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_symlink())
      entries.push_back("L " + rel + " " + fs::read_symlink(it->path()).string());
    else if (it->is_regular_file())
      entries.push_back("F " + rel + " " + sha256_file(it->path().string()) + " " +
                        std::to_string(static_cast<int>(fs::status(it->path()).permissions())));
    else if (it->is_directory())
      entries.push_back("D " + rel);
  }
  std::sort(entries.begin(), entries.end());
  return sha256_hex(join(entries, "\n"));
}

bool Captured::logged(const std::string& needle) const {
  for (const auto& [level, m] : logs)
    if (m.find(needle) != std::string::npos) return true;
  return false;
}

LuaRun run_lua(const std::string& dir, const std::string& code, Mode mode,
               const std::map<std::string, std::string>& params, bool offline) {
  write_file(dir + "/rb.lua", code);
  Journal journal(dir + "/journal.db");
  LuaRun run;
  ExecRequest req;
  req.file = dir + "/rb.lua";
  req.params = params;
  req.options.mode = mode;
  req.options.offline = offline;
  run.result = execute(req, &journal, &run.events, builtin_registry());
  return run;
}

namespace {

struct BareContext : EffectContext {
  std::string dir;
  json st = json::object();
  explicit BareContext(std::string d) : dir(std::move(d)) {}
  int64_t run_id() const override { return 1; }
  std::string artifact_dir() override { return dir; }
  SteadyTime deadline() const override { return SteadyTime::max(); }
  void check_interrupt() const override {}
  void progress(const std::string&) override {}
  void note(const std::string&) override {}
  bool assume_yes() const override { return true; }
  bool interactive() const override { return false; }
  json& state(const std::string&) override { return st; }
  void add_secret(const std::string&) override {}
  json pred = json::object();
  json& predictions() override { return pred; }
};

}  // namespace

json verify_effect(const std::string& effect, json args) {
  const Effect* e = builtin_registry().find(effect);
  if (!e || !e->verify) throw std::logic_error(effect + " has no verify");
  TempDir d;
  BareContext ctx(d.path());
  return e->verify(ctx, validate_args(effect, e->args, std::move(args)));
}

}  // namespace rb::test

namespace rb::test {
void record_run_time(const std::string& label, const CliResult& r) {
  for (const char* key : {"succeeded in ", "failed after ", "stopped after "}) {
    auto at = r.out.rfind(key);
    if (at == std::string::npos) continue;
    at += std::string(key).size();
    auto end = r.out.find_first_of(": \n", at);
    ::testing::Test::RecordProperty(label, r.out.substr(at, end - at));
    return;
  }
  // A --json run: its run_end event's duration.
  for (const auto& e : r.events())
    if (e.value("type", "") == "run_end" && e.contains("duration_ms") && e["duration_ms"].is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1fs", e["duration_ms"].get<double>() / 1000.0);
      ::testing::Test::RecordProperty(label, buf);
      return;
    }
}
}  // namespace rb::test
