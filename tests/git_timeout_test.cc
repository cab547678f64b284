// git.fetch / git.push against remotes that accept a connection and then stall or trickle (http
// and ssh, on 127.0.0.1): each ends within its timeout (or the step's deadline) + 1 s with a clear
// message, on the first Ctrl-C, and leaves no transfer process behind.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "support/support.h"

using namespace rb;
using namespace rb::test;
using Clock = std::chrono::steady_clock;

namespace {

// silent: accepts, reads, never answers. trickle: answers an HTTP header one byte at a time, 5
// bytes a second, for ever (every read succeeds; none completes a response).
const char* kStallServer = R"py(
import socket, sys, threading, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
def serve(c):
    try:
        if mode == "silent":
            while c.recv(65536):
                pass
        else:
            c.recv(65536)
            for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nX-Pad: ":
                c.send(bytes([b]))
                time.sleep(0.05)
            while True:
                c.send(b"a")
                time.sleep(0.2)
    except OSError:
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
)py";

std::string sh(const std::string& cmd) {
  FILE* f = ::popen(("(" + cmd + ") 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  EXPECT_EQ(::pclose(f), 0) << cmd << "\n" << out;
  return out;
}

struct StallServer {
  int port;
  Child child;
  StallServer(const std::string& script, const std::string& mode)
      : port(free_port()), child({"python3", script, std::to_string(port), mode}) {
    if (!wait_for_port(port, 10000))
      throw std::runtime_error(
          "stall server did not start (is python3 installed? apt-get install python3)");
  }
};

// A work tree with one commit and remotes pointing at a silent, a trickling and an ssh-silent
// server.
struct Env {
  TempDir dir;
  std::string work = dir / "work";
  std::string script = dir / "stall.py";
  std::unique_ptr<StallServer> silent, trickle;
  Env() {
    write_file(script, kStallServer);
    silent = std::make_unique<StallServer>(script, "silent");
    trickle = std::make_unique<StallServer>(script, "trickle");
    sh("git init -q -b main '" + work + "'");
    write_file(work + "/a.txt", "a\n");
    sh("cd '" + work + "' && git add -A && git -c user.name=t -c user.email=t@x commit -q -m one");
    auto url = [](int port, const std::string& scheme) {
      return scheme + "://" + (scheme == "ssh" ? "git@" : "") +
             "127.0.0.1:" + std::to_string(port) + "/repo.git";
    };
    sh("git -C '" + work + "' remote add silent " + url(silent->port, "http"));
    sh("git -C '" + work + "' remote add trickle " + url(trickle->port, "http"));
    sh("git -C '" + work + "' remote add sshsilent " + url(silent->port, "ssh"));
  }
  // Runs `body` as one step (with `step_opts` such as `timeout = "2s",`) and times it.
  std::pair<LuaRun, double> run(const std::string& body, const std::string& step_opts = "",
                                Mode mode = Mode::Live) {
    TempDir run_dir;
    std::string code =
        "runbook { name = 'gt', version = '1.0.0', params = { work = { type = 'path' } } }\n"
        "step{ 's', " +
        step_opts + " run = function(p)\nlocal W = p.work\n" + body + "\nend }\n";
    auto t0 = Clock::now();
    LuaRun r = run_lua(run_dir.path(), code, mode, {{"work", work}});
    return {std::move(r), std::chrono::duration<double>(Clock::now() - t0).count()};
  }
};

std::string err_of(const LuaRun& r) {
  if (!r.events.step_errors.empty()) return r.events.step_errors[0];
  for (const auto& e : r.events.effects)
    if (e.preview.is_object() && e.preview.contains("error"))
      return e.preview["error"].get<std::string>();
  return r.result.error;
}

// This process's children other than `except`: a transfer child left behind shows up here.
std::vector<pid_t> my_children(const std::vector<pid_t>& except) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid);
    if (ppid == ::getpid() && std::find(except.begin(), except.end(), pid) == except.end())
      out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

void expect_no_leftovers(const Env& e) {
  EXPECT_EQ(my_children({e.silent->child.pid(), e.trickle->child.pid()}), std::vector<pid_t>{});
}

}  // namespace

TEST(GitTimeout, FetchFromASilentHttpRemoteEndsWithinItsTimeout) {
  Env e;
  auto [r, secs] = e.run("git.fetch{ repo = W, remote = 'silent', timeout = '2s' }");
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_LT(secs, 3.0);
  EXPECT_GE(secs, 1.9);
  EXPECT_NE(err_of(r).find("git.fetch: silent (http://127.0.0.1:" + std::to_string(e.silent->port) +
                           "/repo.git) did not finish within 2.0s"),
            std::string::npos)
      << err_of(r);
  expect_no_leftovers(e);
}

TEST(GitTimeout, FetchFromATricklingHttpRemoteEndsWithinItsTimeout) {
  Env e;
  auto [r, secs] = e.run("git.fetch{ repo = W, remote = 'trickle', timeout = '2s' }");
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_LT(secs, 3.0);
  EXPECT_NE(err_of(r).find("did not finish within 2.0s: the remote stalled or is too slow"),
            std::string::npos)
      << err_of(r);
  expect_no_leftovers(e);
}

TEST(GitTimeout, PushToSilentAndTricklingRemotesEndsWithinItsTimeout) {
  Env e;
  for (std::string remote : {"silent", "trickle"}) {
    auto [r, secs] =
        e.run("git.push{ repo = W, remote = '" + remote + "', refspec = 'main', timeout = '2s' }");
    EXPECT_EQ(r.result.exit_code, 1) << remote;
    EXPECT_LT(secs, 3.0) << remote;
    EXPECT_NE(err_of(r).find("git.push: " + remote + " (http://"), std::string::npos) << err_of(r);
    EXPECT_NE(err_of(r).find("did not finish within 2.0s"), std::string::npos) << err_of(r);
  }
  expect_no_leftovers(e);
}

// A TCP black hole on an ssh URL: libssh2 waits for a banner that never comes.
TEST(GitTimeout, SshRemoteThatNeverSendsItsBannerEndsWithinItsTimeout) {
  Env e;
  for (std::string effect : {"git.fetch", "git.push"}) {
    auto [r, secs] = e.run(effect + "{ repo = W, remote = 'sshsilent', timeout = '2s' }");
    EXPECT_EQ(r.result.exit_code, 1) << effect;
    EXPECT_LT(secs, 3.0) << effect;
    EXPECT_NE(err_of(r).find(effect + ": sshsilent (ssh://git@127.0.0.1:"), std::string::npos)
        << err_of(r);
    EXPECT_NE(err_of(r).find("did not finish within 2.0s"), std::string::npos) << err_of(r);
  }
  expect_no_leftovers(e);
}

TEST(GitTimeout, TheStepDeadlineBoundsALongerTimeout) {
  Env e;
  auto [r, secs] =
      e.run("git.fetch{ repo = W, remote = 'trickle', timeout = '60s' }", "timeout = '2s',");
  EXPECT_EQ(r.result.exit_code, 1);
  EXPECT_LT(secs, 3.0);
  EXPECT_NE(err_of(r).find("exceeded its timeout of 2.0s (in git.fetch)"), std::string::npos)
      << err_of(r);
  expect_no_leftovers(e);
}

TEST(GitTimeout, DryRunPreviewIsBoundedToo) {
  Env e;
  auto [r, secs] = e.run(
      "git.fetch{ repo = W, remote = 'silent', timeout = '2s' }\n"
      "git.push{ repo = W, remote = 'trickle', refspec = 'main', timeout = '2s' }",
      "", Mode::DryRun);
  EXPECT_LT(secs, 5.5);  // two previews, 2 s each
  ASSERT_EQ(r.events.effects.size(), 2u);
  for (const auto& ev : r.events.effects)
    EXPECT_NE(ev.preview.dump().find("did not finish within 2.0s"), std::string::npos)
        << ev.preview.dump();
  expect_no_leftovers(e);
}

TEST(GitTimeout, CtrlCStopsAFetchAtOnce) {
  Env e;
  std::string rb = e.dir / "fetch.lua";
  write_file(rb,
             "runbook { name = 'f', version = '1.0.0' }\n"
             "step('fetch', function() git.fetch{ repo = '" +
                 e.work + "', remote = 'silent', timeout = '60s' } end)\n");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RUNBOOK_JOURNAL", (e.dir / "journal.db").c_str(), 1);
    int fd = ::open((e.dir / "out.txt").c_str(), O_WRONLY | O_CREAT, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(RUNBOOK_BIN, RUNBOOK_BIN, "exec", rb.c_str(), nullptr);
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto t0 = Clock::now();
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_file(e.dir / "out.txt");
  // The runner's transfer child died with it (it is in its own process group: Ctrl-C reaches
  // only the runner, which stops it).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string ps = sh("ps -eo pid,ppid,args | grep '[f]etch.lua' || true");
  EXPECT_EQ(ps, "") << ps;
}

// A fetch that works still works, and its refs are written (the local phase is not cut short).
TEST(GitTimeout, AGoodFetchUpdatesItsRefsAsBefore) {
  Env e;
  std::string origin = e.dir / "origin.git";
  sh("git clone -q --bare '" + e.work + "' '" + origin + "'");
  sh("git -C '" + e.work + "' remote add origin '" + origin + "'");
  auto [r, secs] = e.run(
      "local f = git.fetch{ repo = W, timeout = '20s' }\n"
      "assert(#f.updated == 1 and f.updated[1].ref == 'refs/remotes/origin/main', json.encode(f))");
  EXPECT_EQ(r.result.exit_code, 0) << err_of(r);
  EXPECT_EQ(sh("git -C '" + e.work + "' rev-parse origin/main"),
            sh("git -C '" + e.work + "' rev-parse main"));
  expect_no_leftovers(e);
}
