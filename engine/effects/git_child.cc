// Every remote operation of git.* (fetch, push, their previews and verify) runs in a child
// process, so that its timeout holds whatever the server does.
//
// Why a child and not libgit2's callbacks: libgit2 1.5 has no server timeout, and its callbacks
// (progress, sideband, credentials, certificate) only run between packets, so a server that
// accepts and then says nothing blocks a read in the kernel for ever, and one that trickles a byte
// a second keeps every callback happy. A registered stream (git_stream_register) with poll()
// deadlines would bound plain http, but a TLS stream registered there replaces libgit2's whole TLS
// layer, and ssh goes through libssh2 on a socket of its own that no stream sees. A child bounds
// all of them, DNS included: it opens the repository afresh, does the transfer with libgit2,
// writes its result as JSON to a pipe and _exits; this process waits with the deadline and Ctrl-C
// and stops it.
//
// Stopping: SIGTERM ends the child at once while it talks to the network. Once it writes refs
// (transfer_local_phase) it finishes that instead, since a ref update killed half-way leaves a
// .lock file that fails the next fetch, and is KILLed only if it is still there kLocalGrace later.
//
// fork() in a process with other threads copies only the calling one, and a lock another thread
// held stays held in the child. Effects run on one thread; and even if a lock were held, the
// child would block and be killed at the deadline: a failure, never a hang.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "effects/git_repo.h"

namespace rb::git {
namespace {

using Clock = std::chrono::steady_clock;

// Signal-handler state of the child only (each child resets it first).
volatile sig_atomic_t g_local = 0;

constexpr int kStoppedExit = 124;
constexpr Millis kLocalGrace{500};
// The child's own errors (the preflight's "no answer within 2s") arrive this long after the
// timeout, so they win over the generic "did not finish".
constexpr Millis kAnswerSlack{250};
constexpr size_t kMaxAnswer = size_t{64} << 20;

void on_term(int) {
  if (!g_local) ::_exit(kStoppedExit);
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

json error_answer(const char* kind, const std::string& msg, json result = nullptr) {
  return json{{"kind", kind}, {"error", msg}, {"result", std::move(result)}};
}

[[noreturn]] void child_main(int fd, pid_t parent, const std::function<json()>& body) {
  g_local = 0;
  // Ctrl-C at the terminal goes to the runner's process group only: the runner stops us. And if
  // the runner dies, so do we.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(kStoppedExit);
  struct sigaction sa {};
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);  // a closed socket is an error return, not the end of the child
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  json answer;
  try {
    answer = json{{"ok", body()}};
  } catch (const WouldFail& e) {  // a preview's "the live call would fail": it stays one
    answer = error_answer("wouldfail", e.what(), e.result());
  } catch (const EffectError& e) {
    answer = error_answer("effect", e.what(), e.result());
  } catch (const ArgError& e) {
    answer = error_answer("arg", e.what());
  } catch (const Interrupted& e) {
    answer = error_answer("interrupted", e.what());
  } catch (const DeadlineExceeded& e) {
    answer = error_answer("deadline", e.what());
  } catch (const std::exception& e) {
    answer = error_answer("other", e.what());
  }
  std::string text;
  try {
    text = answer.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const std::exception& e) {
    text = error_answer("other", std::string("cannot encode the result: ") + e.what()).dump();
  }
  write_all(fd, text);
  ::_exit(0);
}

// The child, stopped and reaped by the destructor whatever happens in between.
class Transfer {
 public:
  Transfer(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  ~Transfer() {
    if (!reaped_) stop();
    if (fd_ >= 0) ::close(fd_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Reads what is there, waiting up to `ms`; false once the pipe is closed.
  bool pump(int ms) {
    if (fd_ < 0) {
      ::poll(nullptr, 0, ms);
      return false;
    }
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, ms) > 0) {
      char buf[65536];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        answer_.append(buf, static_cast<size_t>(n));
        if (answer_.size() > kMaxAnswer) throw EffectError("the transfer's answer is over 64 MiB");
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fd_);
        fd_ = -1;
      }
    }
    return fd_ >= 0;
  }
  bool reap() {
    if (!reaped_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  bool done() { return reap() && fd_ < 0; }
  // TERM (immediate unless it is writing refs), then KILL after kLocalGrace; reads on meanwhile,
  // so an answer completed in that time is kept.
  void stop() {
    if (reap()) return;
    ::kill(pid_, SIGTERM);
    auto until = Clock::now() + kLocalGrace;
    while (Clock::now() < until && !done()) pump(10);
    if (!reap()) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
    }
    while (pump(0)) {
    }
  }
  const std::string& answer() const { return answer_; }
  std::string how_it_ended() const {
    if (WIFSIGNALED(status_)) return "killed by signal " + std::to_string(WTERMSIG(status_));
    return "exit " + std::to_string(WEXITSTATUS(status_));
  }

 private:
  pid_t pid_;
  int fd_;
  int status_ = 0;
  bool reaped_ = false;
  std::string answer_;
};

json answer_of(const Transfer& t, const std::string& what) {
  json j = json::parse(t.answer(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw EffectError(what + ": the transfer process ended without an answer (" + t.how_it_ended() +
                      ")");
  if (j.contains("ok")) return j["ok"];
  std::string kind = j.value("kind", "other"), msg = j.value("error", "unknown error");
  if (kind == "arg") throw ArgError(msg);
  if (kind == "interrupted") throw Interrupted(msg);
  if (kind == "deadline") throw DeadlineExceeded(msg);
  if (kind == "wouldfail") throw WouldFail(msg, j.contains("result") ? j["result"] : json(nullptr));
  throw EffectError(msg, j.contains("result") ? j["result"] : json(nullptr));
}

}  // namespace

void transfer_local_phase() { g_local = 1; }

json run_transfer(EffectContext& ctx, const std::string& what, Millis timeout,
                  const std::function<json()>& body) {
  Millis limit = ctx.bound(timeout);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw EffectError(std::string("pipe: ") + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(p[0]);
    ::close(p[1]);
    throw EffectError(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::close(p[0]);
    child_main(p[1], parent, body);
  }
  ::close(p[1]);
  Transfer t(pid, p[0]);
  auto t0 = Clock::now();
  auto until = t0 + limit + kAnswerSlack;
  while (!t.done()) {
    t.pump(50);
    // Interrupted or past the step's deadline: the destructor stops the child on the way out.
    ctx.check_interrupt();
    auto now = Clock::now();
    auto elapsed = std::chrono::duration_cast<Millis>(now - t0);
    if (elapsed.count() > 1000) ctx.progress(what + " (" + format_duration(elapsed) + ")");
    if (now > until && !t.done()) {
      t.stop();
      if (json::parse(t.answer(), nullptr, false).is_object()) break;  // it finished meanwhile
      throw EffectError(what + " did not finish within " + format_duration(limit) +
                        (limit < timeout ? " (the step's deadline)" : "") +
                        ": the remote stalled or is too slow; the transfer was stopped");
    }
  }
  return answer_of(t, what);
}

}  // namespace rb::git
