// Which version of a runbook ran: its git commit and whether the file differed from it. Read
// in-process with libgit2 (never by spawning git), and only here in the CLI: the Lua layer and
// the dispatcher stay free of client libraries.
#include <git2.h>

#include <filesystem>

#include "cli/history.h"

namespace rb::cli {
namespace fs = std::filesystem;

namespace {

struct Git {
  Git() { git_libgit2_init(); }
  ~Git() { git_libgit2_shutdown(); }
};

// Whether some directory from `dir` up holds a .git: initialising libgit2 costs more than the
// rest of a cold start (it sets up TLS), so a runbook outside any repository skips it.
bool inside_a_repository(fs::path dir) {
  std::error_code ec;
  for (; !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / ".git", ec)) return true;
    if (dir == dir.root_path()) break;
  }
  return false;
}

}  // namespace

void git_source_info(RunRecord& run) {
  std::error_code ec;
  fs::path file = fs::canonical(run.file, ec);
  if (ec || !inside_a_repository(file.parent_path())) return;
  static Git git;
  git_repository* repo = nullptr;
  // Flags 0: search up from the file's directory, as `git` does.
  if (git_repository_open_ext(&repo, file.parent_path().c_str(), 0, nullptr) != 0) return;
  const char* wd = git_repository_workdir(repo);
  if (!wd) {
    git_repository_free(repo);
    return;
  }
  fs::path workdir = fs::canonical(wd, ec);
  std::string rel = file.lexically_relative(workdir).generic_string();
  git_oid head;
  std::string commit;
  if (git_reference_name_to_id(&head, repo, "HEAD") == 0) {
    char hex[GIT_OID_HEXSZ + 1] = {0};
    git_oid_tostr(hex, sizeof hex, &head);
    commit = hex;
  }
  unsigned int flags = 0;
  std::string status = "clean";
  int rc = git_status_file(&flags, repo, rel.c_str());
  if (rc != 0 || (flags & GIT_STATUS_WT_NEW) || (flags & GIT_STATUS_INDEX_NEW))
    status = "untracked";
  else if (flags & GIT_STATUS_IGNORED)
    status = "ignored";
  else if (flags != GIT_STATUS_CURRENT)
    status = "modified";
  git_repository_free(repo);
  run.git_commit = commit.empty() ? "(no commit yet)" : commit;
  run.git_dirty = status != "clean";
  run.extra["git"] = json{{"repo", workdir.string()}, {"path", rel}, {"status", status}};
}

int64_t root_run_id(Journal& j, const RunRecord& r) {
  RunRecord cur = r;
  for (int guard = 0; guard < 1000 && cur.mode == "resume" && cur.parent_id; ++guard) {
    auto p = j.run(cur.parent_id);
    if (!p) break;
    cur = *p;
  }
  return cur.id;
}

}  // namespace rb::cli
