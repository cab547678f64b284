#include "core/source_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rb {
namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a plain file";
}

std::string mib(size_t n) { return std::to_string(n >> 20) + " MiB"; }

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool read_source_file(const std::string& path, std::string* out, std::string* err,
                      size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    *err = path + ": cannot read the file (" + std::strerror(errno) + ")";
    return false;
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    *err = path + ": cannot read the file (" + std::strerror(errno) + ")";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *err = path + ": not a regular file (" + kind_of(st.st_mode) + ")";
    return false;
  }
  auto too_big = [&] {
    *err = path + ": the file is larger than " + mib(max_bytes) + ", too large for Lua source";
    return false;
  };
  if (static_cast<unsigned long long>(st.st_size) > max_bytes) return too_big();
  out->clear();
  out->reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  // The size may change while reading (a file being written): the bound holds on what is read.
  while (true) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = path + ": cannot read the file (" + std::strerror(errno) + ")";
      return false;
    }
    if (n == 0) break;
    if (out->size() + static_cast<size_t>(n) > max_bytes) return too_big();
    out->append(buf, static_cast<size_t>(n));
  }
  return true;
}

std::string lua_source_text(std::string_view bytes) {
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  if (bytes.substr(0, 2) != "#!") return std::string(bytes);
  size_t nl = bytes.find('\n');
  return nl == std::string_view::npos ? std::string() : std::string(bytes.substr(nl));
}

}  // namespace rb
