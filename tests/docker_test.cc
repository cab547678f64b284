// 003's image-tag rollback (docker-compose.yml `image: app:1.1` → app:1.0, the service started
// again, health over HTTP) against a REAL Docker: a private dockerd per test (its own data root,
// exec root and socket; no bridge, no iptables), images imported from a busybox rootfs (no
// registry), containers on the host network answering on 127.0.0.1 only.
//
// Compose: Debian 12 ships docker-compose v1 (1.29) and no `docker compose` v2 plugin, so v1
// runs live here; v2's commands are pinned by exact argv in service_test
// (ComposeBackend_IssuesExactCommands_NoDockerHere).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "os/http_client.h"
#include "os/process.h"
#include "support/docker_daemon.h"
#include "support/support.h"

using namespace rb::test;
namespace fs = std::filesystem;

namespace {

const std::string kSecret = "s3cret-xyz";

std::string get_body(const std::string& url) {
  rb::os::HttpRequest req;
  req.url = url;
  req.timeout = std::chrono::milliseconds(3000);
  auto r = rb::os::http_perform(req);
  return r.error.empty() && r.status == 200 ? r.body : "(" + (r.error.empty() ? std::to_string(r.status) : r.error) + ")";
}

// What the URL answers once it answers 200, within `s` seconds.
std::string wait_body(const std::string& url, int s = 60) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(s);
  std::string b;
  while (std::chrono::steady_clock::now() < until) {
    b = get_body(url);
    if (b.empty() || b[0] != '(') return b;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return b;
}

void run_ok(const std::vector<std::string>& argv, const std::string& cwd,
            const std::map<std::string, std::string>& env = {}) {
  rb::os::ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = env;
  spec.timeout = std::chrono::seconds(180);
  auto r = rb::os::run_process(spec);
  ASSERT_EQ(r.code, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": " << r.stdout_text << r.stderr_text;
}

class Docker : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      docker_ = std::make_unique<DockerDaemon>();
      docker_->import_busybox("app:1.0", "1.0");
      docker_->import_busybox("app:1.1", "1.1");
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
    port_ = free_port();
    repo_ = dir_ / "shop";
    fs::create_directories(repo_);
    compose_ = repo_ + "/docker-compose.yml";
    write_file(compose_, compose_text("app:1.1"));
    run_ok({"git", "init", "-q", "-b", "main"}, repo_);
    run_ok({"git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"}, repo_);
    run_ok({"git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "release 1.1"}, repo_);
  }
  std::string compose_text(const std::string& image) const {
    return "version: \"2.4\"\n"
           "services:\n"
           "  web:\n"
           "    image: " + image + "\n"
           "    network_mode: host\n"
           "    command: [\"/bin/httpd\", \"-f\", \"-p\", \"127.0.0.1:" + std::to_string(port_) + "\", \"-h\", \"/www\"]\n"
           "    stop_grace_period: 1s\n"
           "    environment:\n"
           "      POSTGRES_PASSWORD: " + kSecret + "\n"
           "      DATABASE_URL: postgresql://app:" + kSecret + "-url@127.0.0.1:5432/app\n";
  }
  std::string health() const { return "http://127.0.0.1:" + std::to_string(port_) + "/health"; }
  std::string journal() const { return dir_ / "journal.db"; }
  // What docker reports of the one container of service web.
  std::string container(const std::string& format) const {
    std::string ids = docker_->docker({"ps", "-q", "--filter", "label=com.docker.compose.service=web"});
    std::string id = ids.substr(0, ids.find('\n'));
    if (id.empty()) return "(no running container)";
    std::string out = docker_->docker({"inspect", "--format", format, id});
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  void up_v1() {
    auto env = docker_->env();
    run_ok({"docker-compose", "-f", compose_, "up", "-d", "web"}, repo_, env);
    std::string b = wait_body(health());
    if (b != "1.1") {
      std::string ps, logs;
      try {
        ps = docker_->docker({"ps", "-a"});
        logs = docker_->docker({"logs", "shop_web_1"});
      } catch (const std::exception& e) {
        logs += e.what();
      }
      FAIL() << "the 1.1 container does not answer on " << health() << ": " << b << "\n" << ps << logs;
    }
  }
  CliResult rollback(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"exec", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/system-rollback.lua",
                                     "--journal", journal(), "-p", "mode=image", "-p", "repo=" + repo_,
                                     "-p", "image=app", "-p", "image_tag=1.0", "-p", "app_services=web",
                                     "-p", "health=" + health(), "-p", "healthy_within=60s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, docker_->env(), 600);
  }
  // The secret is in no byte of the journal (and its WAL), nor in show and --json.
  void expect_no_secret() {
    EXPECT_EQ(files_containing(dir_.path(), kSecret, repo_), std::vector<std::string>{})
        << "the compose file's password reached the journal or its artifacts' listing";
    auto show = run_cli({"show", "last", "--journal", journal()});
    EXPECT_EQ(show.out.find(kSecret), std::string::npos) << show.out;
    auto js = run_cli({"show", "last", "--json", "--journal", journal()});
    EXPECT_EQ(js.out.find(kSecret), std::string::npos) << js.out;
    EXPECT_NE(show.out.find("app:1.1 → app:1.0"), std::string::npos) << show.out;
  }

  TempDir dir_;
  std::unique_ptr<DockerDaemon> docker_;
  int port_ = 0;
  std::string repo_, compose_;
};

TEST_F(Docker, ComposeV1ImageRollback_RunsTheOldImageAndHealthAnswersItsContent) {
  ASSERT_NO_FATAL_FAILURE(up_v1());
  auto r = rollback({});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // What a user checks: the service answers the 1.0 content, from a container of app:1.0 that
  // docker-compose v1 created; the compose file names app:1.0 and nothing else changed in it.
  EXPECT_EQ(wait_body(health()), "1.0");
  EXPECT_EQ(container("{{.Config.Image}}"), "app:1.0");
  EXPECT_EQ(container("{{index .Config.Labels \"com.docker.compose.version\"}}"), "1.29.2");
  EXPECT_EQ(read_file(compose_), compose_text("app:1.0"));
  // The old compose file is kept in the run's artifacts, not in the journal.
  expect_no_secret();
  // Again: at 1.0 already, the file is not written, the service keeps running.
  auto again = rollback({});
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_EQ(wait_body(health()), "1.0");
}

TEST_F(Docker, ComposeV1ImageRollback_DryRunChangesNothingAndKeepsThePasswordOut) {
  ASSERT_NO_FATAL_FAILURE(up_v1());
  std::string started = container("{{.State.StartedAt}}");
  auto r = rollback({"--dry-run"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // The plan names the edit and the commands, with the v1 command this machine has.
  EXPECT_NE(r.out.find("line 4: image app:1.1 → app:1.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("docker-compose -f " + compose_ + " stop web"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kSecret), std::string::npos) << r.out;
  // Nothing changed: the same 1.1 container, never restarted; the compose file as it was.
  EXPECT_EQ(get_body(health()), "1.1");
  EXPECT_EQ(container("{{.Config.Image}}"), "app:1.1");
  EXPECT_EQ(container("{{.State.StartedAt}}"), started);
  EXPECT_EQ(read_file(compose_), compose_text("app:1.1"));
  expect_no_secret();
}

TEST_F(Docker, ComposeV1ServiceVerbs_AgainstTheRealDaemon) {
  // service.* on the compose backend, v1 found by itself (no plugin here): status, stop, start,
  // restart (a new container) as docker reports them.
  write_file(dir_ / "svc.lua", R"lua(
runbook { name = "svc", version = "1.0.0", params = { file = { type = "path" }, health = { type = "string" } } }
step("verbs", function(p)
  service.define{ name = "web", backend = "compose", config = p.file, health = p.health, start_timeout = "2m" }
  local s = service.status("web")
  assert(s.state == "stopped", json.encode(s))
  assert(service.start("web").state == "running")
  assert(service.start("web").changed == false)
  local x = service.stop("web")
  assert(x.state == "stopped" and x.changed, json.encode(x))
  assert(service.start("web").changed)
  local r = service.restart("web")
  assert(r.state == "running" and r.healthy, json.encode(r))
end)
)lua");
  auto r = run_cli({"exec", dir_ / "svc.lua", "--journal", journal(), "-p", "file=" + compose_, "-p", "health=" + health()},
                   docker_->env(), 600);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(wait_body(health()), "1.1");
  EXPECT_EQ(container("{{index .Config.Labels \"com.docker.compose.version\"}}"), "1.29.2");
}

}  // namespace
