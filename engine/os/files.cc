#include "os/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace rb::os {
namespace fs = std::filesystem;

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(err));
}
}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read", path, errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void atomic_write(const std::string& path, const std::string& data, int mode) {
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for "." + std::string.
  std::string name = ".";
  name += target.filename().string();
  name += ".runbook-XXXXXX";
  std::string tmpl = (dir / name).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail("cannot create a temp file beside", path, errno);
  struct stat st;
  int keep_mode = mode >= 0 ? mode : (::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644);
  ::fchmod(fd, static_cast<mode_t>(keep_mode));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      fail("cannot write", path, e);
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    fail("cannot write", path, e);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    fail("cannot replace", path, e);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void copy_path(const std::string& from, const std::string& to) {
  std::error_code ec;
  auto st = fs::symlink_status(from, ec);
  if (ec || !fs::exists(st)) throw std::runtime_error("cannot copy " + from + ": no such file");
  fs::path parent = fs::path(to).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (fs::is_directory(st)) {
    fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  } else if (fs::is_symlink(st)) {
    fs::copy_symlink(from, to, ec);
  } else {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::permissions(to, fs::status(from).permissions(), ec);
  }
  if (ec) throw std::runtime_error("cannot copy " + from + " to " + to + ": " + ec.message());
}

void move_path(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::path parent = fs::path(to).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (::rename(from.c_str(), to.c_str()) == 0) return;
  if (errno != EXDEV) fail("cannot move", from + " to " + to, errno);
  copy_path(from, to);
  fs::remove_all(from, ec);
  if (ec) throw std::runtime_error("moved " + from + " to " + to + " but cannot remove the original: " + ec.message());
}

std::string unique_path(const std::string& base) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(base, ec))) return base;
  for (int i = 1;; ++i) {
    std::string p = base + "." + std::to_string(i);
    if (!fs::exists(fs::symlink_status(p, ec))) return p;
  }
}

DiskFree disk_free(const std::string& path) {
  struct statvfs v;
  if (::statvfs(path.c_str(), &v) != 0) fail("cannot stat file system of", path, errno);
  DiskFree d;
  d.total = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  d.free = static_cast<uint64_t>(v.f_bfree) * v.f_frsize;
  d.avail = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  uint64_t used = d.total - d.free;
  d.used_percent = (used + d.avail) ? 100.0 * static_cast<double>(used) / static_cast<double>(used + d.avail) : 0;
  return d;
}

uint64_t path_size(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

PrivateFile::PrivateFile(const std::string& prefix, const std::string& content) {
  const char* t = std::getenv("TMPDIR");
  std::string dir = t && *t ? t : "/tmp";
  std::string name = dir + "/" + prefix + "XXXXXX";
  std::vector<char> tmpl(name.begin(), name.end());
  tmpl.push_back('\0');
  // mkostemp: O_CREAT|O_EXCL, mode 0600 before a byte is written; never follows a planted link.
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) fail("cannot create a private file in", dir, errno);
  path_ = tmpl.data();
  auto give_up = [&](int err) {
    ::close(fd);
    ::unlink(path_.c_str());
    fail("cannot write", path_, err);
  };
  // A umask can only take bits away; this makes sure the owner can read it, and no one else.
  if (::fchmod(fd, 0600) != 0) give_up(errno);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up(n < 0 ? errno : EIO);
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(path_.c_str());
    fail("cannot write", path_, err);
  }
}

PrivateFile::~PrivateFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace rb::os
