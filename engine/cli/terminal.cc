#include "core/settings.h"
#include "cli/terminal.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "core/interrupt.h"

namespace rb::cli {

bool is_tty(int fd) { return ::isatty(fd) == 1; }

bool use_color(int fd, bool disabled_by_flag) {
  if (disabled_by_flag) return false;
  // config.toml's color (or RUNBOOK_COLOR), installed as a setting by the command line.
  if (auto pref = setting("color")) {
    if (*pref == "never") return false;
    if (*pref == "always") return true;
  }
  if (const char* n = std::getenv("NO_COLOR"); n && *n) return false;
  if (const char* t = std::getenv("TERM"); t && std::string(t) == "dumb") return false;
  return is_tty(fd);
}

namespace {
void on_signal(int) {
  int n = ++interrupt_count();
  if (n == 1) {
    const char msg[] =
        "\n  interrupt: stopping at the next safe point; the always = true steps still run "
        "(Ctrl-C again to skip them, a third time to exit at once)\n";
    (void)!::write(2, msg, sizeof msg - 1);
  } else if (n == 2) {
    const char msg[] =
        "\n  interrupt: stopping the cleanup; the remaining always = true steps are skipped "
        "(Ctrl-C again to exit at once)\n";
    (void)!::write(2, msg, sizeof msg - 1);
  }
  if (n >= 3) ::_exit(130);
}
}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and notice sooner
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

}  // namespace rb::cli
