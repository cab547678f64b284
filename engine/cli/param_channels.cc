#include "cli/param_channels.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace rb::cli {
namespace {

constexpr size_t kMaxParamFile = 1 << 20;
constexpr size_t kMaxPromptAnswer = 64 * 1024;

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Reads a line from the terminal with echo off; nullopt when there is no terminal or on EOF.
std::optional<std::string> prompt_no_echo(const std::string& name) {
  if (!::isatty(0)) return std::nullopt;
  struct termios old {};
  if (::tcgetattr(0, &old) != 0) return std::nullopt;
  struct termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  // Echo off before the prompt shows, so that nothing typed after it is ever echoed.
  if (::tcsetattr(0, TCSAFLUSH, &quiet) != 0) return std::nullopt;
  std::fprintf(stderr, "%s (secret, not echoed): ", name.c_str());
  std::fflush(stderr);
  std::string line;
  bool got_eol = false;
  char ch;
  while (line.size() < kMaxPromptAnswer) {
    ssize_t n = ::read(0, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (ch == '\n' || ch == '\r') { got_eol = true; break; }
    line += ch;
  }
  ::tcsetattr(0, TCSAFLUSH, &old);
  if (!got_eol) std::fputc('\n', stderr);
  if (!got_eol && line.empty()) return std::nullopt;
  return line;
}

}  // namespace

std::map<std::string, std::string> read_param_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw UsageError("--param-file " + path + ": cannot open: " + std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { ::close(*f); });
  struct stat sb {};
  if (::fstat(fd, &sb) != 0)
    throw UsageError("--param-file " + path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(sb.st_mode)) throw UsageError("--param-file " + path + ": not a regular file");
  if (sb.st_uid != ::geteuid())
    throw UsageError("--param-file " + path + " is owned by uid " + std::to_string(sb.st_uid) +
                     ", not by you (uid " + std::to_string(::geteuid()) +
                     "): refused, since someone else could have written it");
  if (sb.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(sb.st_mode & 0777));
    throw UsageError("--param-file " + path + " has mode " + mode +
                     ": other users can read or write it; refused (chmod 600 " + path + ")");
  }
  if (static_cast<uint64_t>(sb.st_size) > kMaxParamFile)
    throw UsageError("--param-file " + path + ": larger than 1 MiB");
  std::string text;
  char buf[8192];
  while (text.size() <= kMaxParamFile) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UsageError("--param-file " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  if (text.size() > kMaxParamFile) throw UsageError("--param-file " + path + ": larger than 1 MiB");
  std::map<std::string, std::string> out;
  size_t pos = 0;
  int lineno = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto eq = line.find('=');
    std::string name = eq == std::string::npos ? "" : trim(line.substr(0, eq));
    if (name.empty())
      // Never the line itself: it may be a secret.
      throw UsageError("--param-file " + path + " line " + std::to_string(lineno) +
                       ": expected name=value");
    out[name] = line.substr(eq + 1);
  }
  return out;
}

std::function<std::optional<std::string>(const std::string&, bool, bool)> param_channels(
    const std::string& file, bool interactive) {
  auto from_file = std::make_shared<std::map<std::string, std::string>>();
  if (!file.empty()) *from_file = read_param_file(file);
  return [from_file, interactive](const std::string& name, bool secret,
                                  bool needed) -> std::optional<std::string> {
    if (auto it = from_file->find(name); it != from_file->end()) return it->second;
    std::string var = "RUNBOOK_PARAM_";
    for (char ch : name) var += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (const char* v = std::getenv(var.c_str())) return std::string(v);
    if (secret && needed && interactive) return prompt_no_echo(name);
    return std::nullopt;
  };
}

}  // namespace rb::cli
