#include "effects/git_repo.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/error.h"
#include "core/strings.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb::git {
namespace stdfs = std::filesystem;

const std::string kZeroSha(40, '0');

void fail(const std::string& what) {
  const git_error* e = git_error_last();
  std::string msg = e && e->message ? e->message : "unknown libgit2 error";
  throw EffectError(what + ": " + msg);
}

ArgSpec repo_arg() { return req("repo", ArgType::Path, "the repository's work tree"); }

Repo open(const std::string& path) {
  static std::once_flag once;
  // Never shut down: effects may run from any step until the process exits.
  std::call_once(once, [] { git_libgit2_init(); });
  std::error_code ec;
  if (!stdfs::exists(path, ec)) throw EffectError(path + " does not exist");
  Repo r;
  int rc = git_repository_open_ext(r.out(), path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND) throw EffectError(path + " is not a git repository");
  check(rc, "cannot open the repository at " + path);
  return r;
}

Repo open(const Args& a) { return open(a.str("repo")); }

std::string workdir(git_repository* repo) {
  const char* w = git_repository_workdir(repo);
  if (!w) return "";
  std::string s = w;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string where(git_repository* repo) {
  std::string w = workdir(repo);
  if (!w.empty()) return w;
  std::string p = git_repository_path(repo);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

void require_workdir(git_repository* repo, const std::string& path) {
  if (git_repository_is_bare(repo))
    throw EffectError(path + " is a bare repository (no work tree)");
}

std::string hex(const git_oid& id) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &id);
  return buf;
}

std::string short_hex(const git_oid& id) { return hex(id).substr(0, 7); }

Commit resolve_commit(git_repository* repo, const std::string& rev) {
  if (rev.empty()) throw EffectError("an empty ref names nothing");
  Object o;
  int rc = git_revparse_single(o.out(), repo, rev.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
    throw EffectError("unknown ref '" + rev + "' in " + where(repo));
  if (rc == GIT_EAMBIGUOUS) throw EffectError("'" + rev + "' is ambiguous in " + where(repo));
  check(rc, "cannot resolve '" + rev + "' in " + where(repo));
  Object peeled;
  if (git_object_peel(peeled.out(), o.get(), GIT_OBJECT_COMMIT) < 0)
    throw EffectError("'" + rev + "' does not name a commit");
  return Commit(reinterpret_cast<git_commit*>(peeled.release()));
}

Tree tree_of(git_commit* c) {
  Tree t;
  check(git_commit_tree(t.out(), c), "cannot read the tree of " + short_hex(*git_commit_id(c)));
  return t;
}

std::string summary_of(git_commit* c) {
  const char* s = git_commit_summary(c);
  return s ? s : "";
}

Head head(git_repository* repo) {
  Head h;
  Reference ref;
  int rc = git_repository_head(ref.out(), repo);
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
    h.unborn = true;
    return h;
  }
  check(rc, "cannot read HEAD of " + where(repo));
  h.detached = git_repository_head_detached(repo) == 1;
  if (!h.detached) h.ref = git_reference_name(ref.get());
  Object target;
  check(git_reference_peel(target.out(), ref.get(), GIT_OBJECT_COMMIT), "cannot resolve HEAD");
  h.id = *git_object_id(target.get());
  return h;
}

bool moves_with_head(git_repository* repo, const std::string& rev, bool branch_too) {
  std::string base = rev.substr(0, rev.find_first_of("~^:@"));
  if (base.empty() || base == "HEAD") return true;
  if (!branch_too) return false;
  Head h = head(repo);
  return !h.detached && (h.ref == base || h.ref == "refs/heads/" + base);
}

Commit head_commit(git_repository* repo) {
  Head h = head(repo);
  if (h.unborn) throw EffectError(where(repo) + " has no commits yet");
  Commit c;
  check(git_commit_lookup(c.out(), repo, &h.id), "cannot read HEAD's commit");
  return c;
}

std::vector<std::string> tags_at(git_repository* repo, const git_oid& id) {
  struct Payload {
    git_repository* repo;
    git_oid want;
    std::vector<std::string> names;
  } p{repo, id, {}};
  git_tag_foreach(
      repo,
      [](const char* name, git_oid* oid, void* data) -> int {
        auto* p = static_cast<Payload*>(data);
        Object o, peeled;
        if (git_object_lookup(o.out(), p->repo, oid, GIT_OBJECT_ANY) < 0) return 0;
        if (git_object_peel(peeled.out(), o.get(), GIT_OBJECT_COMMIT) < 0) return 0;
        if (git_oid_equal(git_object_id(peeled.get()), &p->want)) {
          std::string n = name;
          if (n.rfind("refs/tags/", 0) == 0) n = n.substr(10);
          p->names.push_back(n);
        }
        return 0;
      },
      &p);
  std::sort(p.names.begin(), p.names.end());
  return p.names;
}

std::string label(git_repository* repo, const git_oid& id) {
  auto tags = tags_at(repo, id);
  return short_hex(id) + (tags.empty() ? "" : " (" + join(tags, ", ") + ")");
}

std::vector<std::string> diff_names(git_repository* repo, git_tree* from, git_tree* to) {
  Diff d;
  check(git_diff_tree_to_tree(d.out(), repo, from, to, nullptr), "cannot diff");
  std::set<std::string> names;
  for (size_t i = 0; i < git_diff_num_deltas(d.get()); ++i) {
    const git_diff_delta* dd = git_diff_get_delta(d.get(), i);
    if (dd->old_file.path) names.insert(dd->old_file.path);
    if (dd->new_file.path) names.insert(dd->new_file.path);
  }
  return {names.begin(), names.end()};
}

std::vector<std::string> Status::tracked_changes() const {
  std::set<std::string> s(modified.begin(), modified.end());
  s.insert(staged.begin(), staged.end());
  s.insert(conflicted.begin(), conflicted.end());
  return {s.begin(), s.end()};
}

Status status(git_repository* repo, bool ignored, bool recurse_untracked) {
  git_status_options o = GIT_STATUS_OPTIONS_INIT;
  o.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  o.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED |
            (recurse_untracked ? GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS : 0) |
            (ignored ? GIT_STATUS_OPT_INCLUDE_IGNORED : 0);
  StatusList list;
  check(git_status_list_new(list.out(), repo, &o), "cannot read the status of " + where(repo));
  Status s;
  constexpr unsigned kIndex = GIT_STATUS_INDEX_NEW | GIT_STATUS_INDEX_MODIFIED |
                              GIT_STATUS_INDEX_DELETED | GIT_STATUS_INDEX_RENAMED |
                              GIT_STATUS_INDEX_TYPECHANGE;
  constexpr unsigned kWork = GIT_STATUS_WT_MODIFIED | GIT_STATUS_WT_DELETED |
                             GIT_STATUS_WT_TYPECHANGE | GIT_STATUS_WT_RENAMED |
                             GIT_STATUS_WT_UNREADABLE;
  for (size_t i = 0; i < git_status_list_entrycount(list.get()); ++i) {
    const git_status_entry* e = git_status_byindex(list.get(), i);
    const git_diff_delta* d = e->index_to_workdir ? e->index_to_workdir : e->head_to_index;
    if (!d) continue;
    std::string path = d->new_file.path ? d->new_file.path : d->old_file.path;
    unsigned st = e->status;
    if (st & GIT_STATUS_CONFLICTED) {
      s.conflicted.push_back(path);
      continue;
    }
    if (st & kIndex) {
      const git_diff_delta* hi = e->head_to_index;
      s.staged.push_back(hi && hi->new_file.path ? hi->new_file.path : path);
    }
    if (st & kWork) s.modified.push_back(path);
    if (st & GIT_STATUS_WT_NEW) s.untracked.push_back(path);
    if (st & GIT_STATUS_IGNORED) s.ignored.push_back(path);
  }
  return s;
}

Signature signature(git_repository* repo) {
  Signature s;
  if (git_signature_default(s.out(), repo) == 0) return s;
  check(git_signature_now(s.out(), "runbook", "runbook@localhost"), "cannot make a signature");
  return s;
}

void move_head(git_repository* repo, const git_oid& id, const git_oid& expected,
               const std::string& why) {
  Reference h;
  check(git_reference_lookup(h.out(), repo, "HEAD"), "cannot read HEAD");
  if (git_reference_type(h.get()) == GIT_REFERENCE_SYMBOLIC) {
    Reference out;
    check(git_reference_create_matching(out.out(), repo, git_reference_symbolic_target(h.get()),
                                        &id, 1, &expected, why.c_str()),
          "cannot move " + std::string(git_reference_symbolic_target(h.get())));
  } else {
    check(git_repository_set_head_detached(repo, &id), "cannot move HEAD");
  }
}

json Backup::to_json() const {
  json j{{"ref", head_ref.empty() ? json(nullptr) : json(head_ref)},
         {"head", head.empty() ? json(nullptr) : json(head)}};
  j["changes_ref"] = changes_ref.empty() ? json(nullptr) : json(changes_ref);
  j["changes"] = changes.empty() ? json(nullptr) : json(changes);
  return j;
}

namespace {

std::string backup_prefix(int64_t run_id, int n) {
  return "refs/runbook/backup/" + std::to_string(run_id) + "/" + std::to_string(n);
}

bool ref_exists(git_repository* repo, const std::string& name) {
  git_oid id;
  return git_reference_name_to_id(&id, repo, name.c_str()) == 0;
}

}  // namespace

int next_backup_n(git_repository* repo, int64_t run_id) {
  int n = 1;
  while (ref_exists(repo, backup_prefix(run_id, n) + "/head") ||
         ref_exists(repo, backup_prefix(run_id, n) + "/changes"))
    ++n;
  return n;
}

Backup make_backup(EffectContext& ctx, git_repository* repo, const std::string& why) {
  Backup b;
  b.n = next_backup_n(repo, ctx.run_id());
  std::string prefix = backup_prefix(ctx.run_id(), b.n);
  if (head(repo).unborn) return b;  // no commit to point at; untracked files still go to artifacts
  Commit hc = head_commit(repo);
  std::string msg = "runbook run " + std::to_string(ctx.run_id()) + ": before " + why;
  Reference ref;
  check(git_reference_create(ref.out(), repo, (prefix + "/head").c_str(), git_commit_id(hc.get()),
                             0, msg.c_str()),
        "cannot record the backup ref " + prefix + "/head");
  b.head_ref = prefix + "/head";
  b.head = hex(*git_commit_id(hc.get()));

  Status st = status(repo, false, false);
  if (!st.tracked_dirty()) return b;
  // The snapshot is built in the repository's index in memory and never written: the on-disk
  // index is re-read afterwards, whatever happens.
  Index idx;
  check(git_repository_index(idx.out(), repo), "cannot read the index");
  git_oid tree_id;
  int rc = 0;
  std::string wd = workdir(repo);
  for (const auto& p : st.tracked_changes()) {
    std::error_code ec;
    bool present = stdfs::exists(stdfs::symlink_status(wd + "/" + p, ec));
    rc = present ? git_index_add_bypath(idx.get(), p.c_str())
                 : git_index_remove_bypath(idx.get(), p.c_str());
    if (rc < 0) break;
  }
  if (rc >= 0) rc = git_index_write_tree(&tree_id, idx.get());
  std::string err = rc < 0 && git_error_last() ? git_error_last()->message : "";
  git_index_read(idx.get(), 1);
  if (rc < 0) throw EffectError("cannot snapshot the uncommitted changes: " + err);
  Tree t;
  check(git_tree_lookup(t.out(), repo, &tree_id), "cannot read the snapshot tree");
  Signature sig = signature(repo);
  const git_commit* parents[] = {hc.get()};
  git_oid cid;
  std::string cmsg = msg + ": uncommitted changes to " +
                     std::to_string(st.tracked_changes().size()) + " tracked files\n";
  check(git_commit_create(&cid, repo, nullptr, sig.get(), sig.get(), nullptr, cmsg.c_str(), t.get(),
                          1, parents),
        "cannot commit the snapshot of uncommitted changes");
  Reference cref;
  check(git_reference_create(cref.out(), repo, (prefix + "/changes").c_str(), &cid, 0, msg.c_str()),
        "cannot record the backup ref " + prefix + "/changes");
  b.changes_ref = prefix + "/changes";
  b.changes = hex(cid);
  return b;
}

std::string move_to_artifacts(EffectContext& ctx, git_repository* repo, const std::string& what,
                              int n, const std::vector<std::string>& paths) {
  std::error_code ec;
  std::string root = stdfs::absolute(ctx.artifact_dir(), ec).lexically_normal().string();
  std::string base = os::unique_path(root + "/git-" + what + "-" + std::to_string(n));
  std::string wd = workdir(repo);
  json moved = json::array();
  for (const auto& p : paths) {
    std::string rel = p;
    while (!rel.empty() && rel.back() == '/') rel.pop_back();
    if (rel.empty()) continue;
    try {
      os::move_path(wd + "/" + rel, base + "/" + rel);
    } catch (const std::exception& e) {
      throw EffectError(
          std::string(e.what()) + " (already moved: " + std::to_string(moved.size()) + ")",
          json{{"moved", moved}, {"moved_to", base}});
    }
    moved.push_back(rel);
    // Like `git clean -d`: directories the move emptied go too (rmdir refuses non-empty ones).
    for (stdfs::path dir = stdfs::path(rel).parent_path(); !dir.empty(); dir = dir.parent_path())
      if (::rmdir((wd + "/" + dir.string()).c_str()) != 0) break;
  }
  return base;
}

// Collects the paths a checkout reports as conflicts (local changes or untracked files in the way).
static int collect_conflict(git_checkout_notify_t, const char* path, const git_diff_file*,
                            const git_diff_file*, const git_diff_file*, void* payload) {
  static_cast<std::vector<std::string>*>(payload)->push_back(path);
  return 0;
}

// Files a safe checkout of `target` would refuse to overwrite. Read-only (a libgit2 dry run).
std::vector<std::string> checkout_conflicts(git_repository* repo, git_tree* target) {
  std::vector<std::string> paths;
  git_checkout_options o = GIT_CHECKOUT_OPTIONS_INIT;
  o.checkout_strategy = GIT_CHECKOUT_SAFE | GIT_CHECKOUT_DRY_RUN | GIT_CHECKOUT_DONT_WRITE_INDEX;
  o.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
  o.notify_cb = collect_conflict;
  o.notify_payload = &paths;
  git_checkout_tree(repo, reinterpret_cast<git_object*>(target), &o);
  return paths;
}

void safe_checkout(git_repository* repo, git_tree* target) {
  std::vector<std::string> paths;
  git_checkout_options o = GIT_CHECKOUT_OPTIONS_INIT;
  o.checkout_strategy = GIT_CHECKOUT_SAFE;
  o.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
  o.notify_cb = collect_conflict;
  o.notify_payload = &paths;
  int rc = git_checkout_tree(repo, reinterpret_cast<git_object*>(target), &o);
  if (rc == GIT_ECONFLICT || (rc < 0 && !paths.empty()))
    throw EffectError("local files are in the way: " + list_text(paths) +
                          " (move them, or git.clean them into the run's artifacts)",
                      json{{"in_the_way", strings_json(paths)}});
  check(rc, "checkout failed");
}

json strings_json(const std::vector<std::string>& v) {
  json a = json::array();
  for (const auto& s : v) a.push_back(s);
  return a;
}

std::string list_text(const std::vector<std::string>& v, size_t max) {
  std::vector<std::string> shown(v.begin(), v.begin() + std::min(max, v.size()));
  std::string s = join(shown, ", ");
  if (v.size() > max) s += " and " + std::to_string(v.size() - max) + " more";
  return s;
}

}  // namespace rb::git
