// Shared by the git.* effects (git.cc, git_tree.cc, git_history.cc, git_remote.cc): RAII handles
// for libgit2 objects, opening a repository and resolving refs with clear errors, status, the
// backup refs that guard destructive operations, and moving files into the run's artifacts.
// Everything goes through libgit2; nothing here spawns `git`.
#pragma once
#include <git2.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "dispatch/args.h"
#include "dispatch/context.h"
#include "dispatch/registry.h"

namespace rb::git {

// Owns one libgit2 object; out() hands libgit2 the slot to fill.
template <typename T, void (*Free)(T*)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T* p) : p_(p) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  T* get() const { return p_; }
  T** out() {
    reset();
    return &p_;
  }
  void reset() {
    if (p_) Free(p_);
    p_ = nullptr;
  }
  T* release() { return std::exchange(p_, nullptr); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

using Repo = Handle<git_repository, git_repository_free>;
using Object = Handle<git_object, git_object_free>;
using Commit = Handle<git_commit, git_commit_free>;
using Tree = Handle<git_tree, git_tree_free>;
using TreeEntry = Handle<git_tree_entry, git_tree_entry_free>;
using Reference = Handle<git_reference, git_reference_free>;
using Index = Handle<git_index, git_index_free>;
using Diff = Handle<git_diff, git_diff_free>;
using StatusList = Handle<git_status_list, git_status_list_free>;
using Revwalk = Handle<git_revwalk, git_revwalk_free>;
using Remote = Handle<git_remote, git_remote_free>;
using Signature = Handle<git_signature, git_signature_free>;
using Blob = Handle<git_blob, git_blob_free>;
using Odb = Handle<git_odb, git_odb_free>;

// Throws EffectError "<what>: <libgit2's message>".
[[noreturn]] void fail(const std::string& what);
inline void check(int rc, const std::string& what) {
  if (rc < 0) fail(what);
}

// The `repo = path` argument every git effect takes.
ArgSpec repo_arg();

// Opens the repository whose work tree (or .git) is exactly `path`; never searches upwards, so a
// runbook cannot reset a parent repository by naming a subdirectory. Initialises libgit2 once.
Repo open(const std::string& path);
Repo open(const Args& a);
// Throws unless the repository has a work tree (everything but the probes needs one).
void require_workdir(git_repository* repo, const std::string& path);
std::string workdir(git_repository* repo);  // without the trailing slash
// The work tree, or the .git directory of a bare repository: how messages name the repository.
std::string where(git_repository* repo);

std::string hex(const git_oid& id);
std::string short_hex(const git_oid& id);  // 7 characters
extern const std::string kZeroSha;         // placeholder in planned results

// A revision ("HEAD~1", "v1.0.0", a sha, "origin/main") to the commit it names.
Commit resolve_commit(git_repository* repo, const std::string& rev);
Tree tree_of(git_commit* c);
std::string summary_of(git_commit* c);

struct Head {
  bool unborn = false;
  bool detached = false;
  git_oid id{};
  std::string ref;  // "refs/heads/main", empty when detached
};
Head head(git_repository* repo);
// Whether a revision is relative to HEAD ("HEAD~1", "@"), or with `branch_too` to the branch HEAD
// is on ("main^" while on main, which a reset moves): once the effect ran it names something
// else, so verify cannot use it.
bool moves_with_head(git_repository* repo, const std::string& rev, bool branch_too);
Commit head_commit(git_repository* repo);  // throws on an unborn HEAD

// Tag names whose target peels to `id`, sorted.
std::vector<std::string> tags_at(git_repository* repo, const git_oid& id);
// "1a2b3c4 (v2.0.1)": a commit as people name it.
std::string label(git_repository* repo, const git_oid& id);

// Paths that differ between two trees (either may be null: the empty tree).
std::vector<std::string> diff_names(git_repository* repo, git_tree* from, git_tree* to);

struct Status {
  std::vector<std::string> modified;   // tracked, changed in the work tree (incl. deleted)
  std::vector<std::string> staged;     // changed in the index
  std::vector<std::string> untracked;  // files (dirs recursed unless asked otherwise)
  std::vector<std::string> ignored;    // only when asked for; dirs end with '/'
  std::vector<std::string> conflicted;
  bool tracked_dirty() const { return !modified.empty() || !staged.empty() || !conflicted.empty(); }
  // Tracked paths with uncommitted changes, each once.
  std::vector<std::string> tracked_changes() const;
};
Status status(git_repository* repo, bool ignored = false, bool recurse_untracked = true);

// The identity commits are made with: the repository's user.name/user.email, else "runbook".
Signature signature(git_repository* repo);

// Moves HEAD (the branch it points at, or HEAD itself when detached) to `id`, checking that it
// still is at `expected` (compare-and-swap).
void move_head(git_repository* repo, const git_oid& id, const git_oid& expected,
               const std::string& why);

// Guard rail for reset --hard and clean: refs/runbook/backup/<run>/<n>/head at HEAD, and when
// tracked files have uncommitted changes, a snapshot commit of them at .../<n>/changes.
struct Backup {
  int n = 0;
  std::string head_ref, head;        // ref name, sha
  std::string changes_ref, changes;  // empty when the tree had no uncommitted tracked changes
  json to_json() const;
};
// The backup `n` that the next call would use, for previews.
int next_backup_n(git_repository* repo, int64_t run_id);
Backup make_backup(EffectContext& ctx, git_repository* repo, const std::string& why);

// Moves work-tree paths (relative, dirs may end with '/') into <artifacts>/git-<what>-<n>/,
// keeping their relative paths, and removes directories the move left empty. Returns the
// directory they went to.
std::string move_to_artifacts(EffectContext& ctx, git_repository* repo, const std::string& what,
                              int n, const std::vector<std::string>& paths);

// Files a safe checkout of `target` would refuse to overwrite (read-only: a libgit2 dry run).
std::vector<std::string> checkout_conflicts(git_repository* repo, git_tree* target);
// Checks `target` out over HEAD's tree, overwriting nothing uncommitted or untracked; throws
// naming the files in the way.
void safe_checkout(git_repository* repo, git_tree* target);

// Runs `body`, a whole remote operation (connect, transfer, ref updates), in a forked child and
// returns what it returned, or throws what it threw. Ends within min(timeout, the step's deadline)
// plus a fraction of a second, and on the first Ctrl-C, whatever the server does (git_child.cc).
// `what` names the remote in messages: "origin (https://host/repo.git)".
json run_transfer(EffectContext& ctx, const std::string& what, Millis timeout,
                  const std::function<json()>& body);
// Called by `body` before it writes refs: from then on a stop lets it finish them (no .lock left).
void transfer_local_phase();

json strings_json(const std::vector<std::string>& v);
// "a.py, b.py and 3 more"
std::string list_text(const std::vector<std::string>& v, size_t max = 5);

void register_tree_effects(Registry& r);     // stash, checkout, reset, clean (git_tree.cc)
void register_history_effects(Registry& r);  // revert, cherry_pick (git_history.cc)
void register_remote_effects(Registry& r);   // fetch, push (git_remote.cc)

}  // namespace rb::git
