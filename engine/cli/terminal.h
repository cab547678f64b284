#pragma once
#include <string>

namespace rb::cli {

bool is_tty(int fd);
// Colour only on a terminal, never with NO_COLOR set (https://no-color.org) or --no-color.
bool use_color(int fd, bool disabled_by_flag);
// SIGINT/SIGTERM set the interrupt flag; a third one exits at once with 130.
void install_signal_handlers();

struct Style {
  bool on = false;
  std::string green(const std::string& s) const { return wrap("32", s); }
  std::string red(const std::string& s) const { return wrap("31", s); }
  std::string yellow(const std::string& s) const { return wrap("33", s); }
  std::string cyan(const std::string& s) const { return wrap("36", s); }
  std::string dim(const std::string& s) const { return wrap("2", s); }
  std::string bold(const std::string& s) const { return wrap("1", s); }
  std::string wrap(const char* code, const std::string& s) const {
    return on ? "\033[" + std::string(code) + "m" + s + "\033[0m" : s;
  }
};

}  // namespace rb::cli
