// File operations the fs effects are built from. Every function throws std::runtime_error with
// the path and the reason; none deletes data outright (removal is a move, decided by callers).
#pragma once
#include <cstdint>
#include <string>

namespace rb::os {

std::string read_file(const std::string& path);
// Writes to a temp file beside the target, fsyncs it, renames it over the target, fsyncs the
// directory. The target is either the old content or the new, never half of each.
void atomic_write(const std::string& path, const std::string& data, int mode = -1);
// Copies a file or a directory tree (symlinks as symlinks, permissions kept).
void copy_path(const std::string& from, const std::string& to);
// rename(2), or copy then remove across file systems.
void move_path(const std::string& from, const std::string& to);
// `base`, or `base.1`, `base.2`... whichever does not exist yet.
std::string unique_path(const std::string& base);
struct DiskFree {
  uint64_t total = 0, free = 0, avail = 0;
  double used_percent = 0;
};
DiskFree disk_free(const std::string& path);
// Total bytes of a file or tree.
uint64_t path_size(const std::string& path);

// A file only its owner can read, for a secret a child process reads (an npmrc with a token, a
// requirements file with a password in a URL): created with O_EXCL and mode 0600 from the first
// byte (mkostemp), in $TMPDIR or /tmp, and removed when this goes out of scope.
class PrivateFile {
 public:
  // `prefix`: the start of the file's name ("runbook-npmrc-"). Throws std::runtime_error.
  PrivateFile(const std::string& prefix, const std::string& content);
  ~PrivateFile();
  PrivateFile(const PrivateFile&) = delete;
  PrivateFile& operator=(const PrivateFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace rb::os
