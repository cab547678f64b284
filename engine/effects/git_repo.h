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

#include "core/error.h"
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

// ---- dry-run predictions (git_repo.cc) ---------------------------------------------------
// ctx.predictions()["git"][<work tree>] is what the changes planned so far make true of one
// repository (engine/dispatch/effect.h: predict/predicted):
//   { head = PCommit or null (no commits), ref = "refs/heads/main" or null (detached),
//     refs = { "refs/tags/x" = PCommit, ... } (refs planned changes created or moved),
//     worktree = "live" | "clean" (tracked files as HEAD) | "index_clean" | "unknown",
//     untracked_removed = {...}, untracked_gone, after = "git.reset v1.0.0 in /w" (the last change),
//     unknown = why (set when a change could not be previewed: nothing of it can be said) }
// A PCommit is { id = sha } for a commit that exists, or, for one a planned commit, revert or
// cherry-pick makes (its id depends on the clock), { id = unknown, by = "git.revert ... in /w",
// base = sha the new commits sit on (or null), made = { { summary, author, email }, newest
// first }, files = paths changed from base (or absent) }.
json known_commit(const git_oid& id);
bool is_known(const json& pc);
git_oid oid_of(const json& pc);  // of a known PCommit
// This repository's prediction, or null when no planned change touched it (always null live).
const json* predicted_repo(EffectContext& ctx, git_repository* repo);
// The prediction to update (created from the world as it is now), after the change `after`.
json& predict_repo(EffectContext& ctx, git_repository* repo, const std::string& after);
// Moves the predicted HEAD (and the branch it is on) to `pc`.
void predict_head(json& p, const json& pc);
// A revision in the predicted world: HEAD, HEAD~n, refs planned changes made, else the world.
// Throws EffectError as resolve_commit does when it names nothing.
json resolve_predicted(git_repository* repo, const json* pred, const std::string& rev);
// Like resolve_predicted, but `live` resolves whatever is left in the world (rev_parse also
// names trees and blobs): it gets the revision with a known sha in place of the predicted part.
json resolve_predicted_with(git_repository* repo, const json* pred, const std::string& rev,
                            const std::function<json(const std::string&)>& live);
// The predicted tracked changes: the world's, unless a planned change cleaned them; nullopt
// when they cannot be known.
std::optional<std::vector<std::string>> predicted_dirty(git_repository* repo, const json* pred);
// The untracked files as predicted: the world's, less what planned changes remove.
std::vector<std::string> predicted_untracked(const json* pred, const std::vector<std::string>& live);
// Whether the world already is the predicted state (no prediction, or one that changed neither
// HEAD nor the work tree): then libgit2 can be asked about it directly.
bool world_is_predicted(git_repository* repo, const json* pred);
// "1a2b3c4 (v2.0.1)", or "(the commit git.revert ... makes)".
std::string pc_label(git_repository* repo, const json& pc);
// The preview's "basis": HEAD as it is, the commit the change goes to (null when not known before
// it runs) and the tracked files with uncommitted changes.
json basis(git_repository* repo, const json& target);
// The commit a planned commit/revert/cherry-pick makes on top of `head`: `made` newest first.
json new_commits(json& p, const json& head, const json& made, const json& files,
                 const std::string& by);
// For predict(): runs `body` on this repository's prediction (made from the world if there is
// none yet). When the change could not be previewed (`pv` null or an error) or `body` throws,
// the repository is marked unknown: its probes then answer unknown values.
void with_prediction(EffectContext& ctx, const Args& a, const json& pv, const std::string& after,
                     const std::function<void(git_repository*, json&)>& body);
// Marks the work tree's files as changed by a git change, for the fs module's probes.
void taint_files(EffectContext& ctx, const std::string& after);
// Runs `f`, turning an EffectError into WouldFail: for previews that meet exactly the error apply
// would raise (a ref that does not resolve, not a repository).
template <typename F>
auto sure(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const WouldFail&) {
    throw;
  } catch (const EffectError& e) {
    throw WouldFail(e.what(), e.result());
  }
}

json strings_json(const std::vector<std::string>& v);
// "a.py, b.py and 3 more"
std::string list_text(const std::vector<std::string>& v, size_t max = 5);

void register_tree_effects(Registry& r);     // stash, checkout, reset, clean (git_tree.cc)
void register_history_effects(Registry& r);  // revert, cherry_pick (git_history.cc)
void register_remote_effects(Registry& r);   // fetch, push (git_remote.cc)

}  // namespace rb::git
