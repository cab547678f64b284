#include "effects/git_repo.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/error.h"
#include "core/strings.h"
#include "core/unknown.h"
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

// ---- dry-run predictions ------------------------------------------------------------------

json known_commit(const git_oid& id) { return json{{"id", hex(id)}}; }

bool is_known(const json& pc) {
  return pc.is_object() && pc.contains("id") && pc["id"].is_string();
}

git_oid oid_of(const json& pc) {
  git_oid id{};
  git_oid_fromstr(&id, pc["id"].get<std::string>().c_str());
  return id;
}

const json* predicted_repo(EffectContext& ctx, git_repository* repo) {
  const json& all = ctx.predictions();
  if (!all.is_object()) return nullptr;
  auto g = all.find("git");
  if (g == all.end() || !g->is_object()) return nullptr;
  auto p = g->find(where(repo));
  return p == g->end() || !p->is_object() ? nullptr : &*p;
}

json& predict_repo(EffectContext& ctx, git_repository* repo, const std::string& after) {
  json& all = ctx.predictions();
  if (!all.is_object()) all = json::object();
  json& g = all["git"];
  if (!g.is_object()) g = json::object();
  json& p = g[where(repo)];
  if (!p.is_object()) {
    Head h = head(repo);
    std::string ref = h.ref;
    if (h.unborn) {
      Reference hr;
      if (git_reference_lookup(hr.out(), repo, "HEAD") == 0 &&
          git_reference_type(hr.get()) == GIT_REFERENCE_SYMBOLIC)
        ref = git_reference_symbolic_target(hr.get());
    }
    p = json{{"head", h.unborn ? json(nullptr) : known_commit(h.id)},
             {"ref", h.detached || ref.empty() ? json(nullptr) : json(ref)},
             {"refs", json::object()},
             {"worktree", "live"},
             {"untracked_removed", json::array()},
             {"untracked_gone", false}};
  }
  p["after"] = after;
  return p;
}

void predict_head(json& p, const json& pc) {
  p["head"] = pc;
  if (p["ref"].is_string()) p["refs"][p["ref"].get<std::string>()] = pc;
}

namespace {

// "~2^~" as first-parent steps (3); nullopt for anything else (^2, ^{tree}, @{1}, :path).
std::optional<int64_t> first_parent_steps(const std::string& s) {
  int64_t k = 0;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i++];
    if (c != '~' && c != '^') return std::nullopt;
    size_t j = i;
    while (j < s.size() && j - i < 9 && s[j] >= '0' && s[j] <= '9') ++j;
    int64_t n = j == i ? 1 : std::stoll(s.substr(i, j - i));
    if (j < s.size() && s[j] >= '0' && s[j] <= '9') return std::nullopt;  // absurdly long
    if (c == '^' && n > 1) return std::nullopt;
    k += n;
    i = j;
  }
  return k;
}

bool live_ref_exists(git_repository* repo, const std::string& name) {
  Reference r;
  return git_reference_lookup(r.out(), repo, name.c_str()) == 0;
}

}  // namespace

json resolve_predicted_with(git_repository* repo, const json* pred, const std::string& rev,
                            const std::function<json(const std::string&)>& live) {
  if (!pred) return live(rev);
  if (pred->contains("unknown")) {
    return json{{"id", unknown_value(pred->at("unknown").get<std::string>())},
                {"by", pred->at("after")}};
  }
  std::string base, suffix;
  if (rev == "@") {  // libgit2 takes "@" alone for HEAD, not "@~1"
    base = "HEAD";
  } else {
    size_t cut = rev.find_first_of("~^:@");
    base = rev.substr(0, cut);
    suffix = cut == std::string::npos ? "" : rev.substr(cut);
  }
  // What is not a name is left to the world.
  if (base.empty()) return live(rev);
  // A reflog ("HEAD@{1}") of a ref planned changes move gets their entries first: not known.
  bool reflog = !suffix.empty() && suffix[0] == '@';
  const json* pc = nullptr;
  if (base == "HEAD") {
    pc = &pred->at("head");
    if (pc->is_null()) throw EffectError("unknown ref '" + rev + "' in " + where(repo));
  } else {
    const json& refs = pred->at("refs");
    for (const std::string& cand :
         {base, "refs/" + base, "refs/tags/" + base, "refs/heads/" + base, "refs/remotes/" + base,
          "refs/remotes/" + base + "/HEAD"}) {
      if (refs.contains(cand)) {
        pc = &refs[cand];
        break;
      }
      if (live_ref_exists(repo, cand)) break;
    }
  }
  if (!pc) return live(rev);
  if (reflog) {
    json out{{"id", unknown_value("reflog " + rev + " after " + pred->at("after").get<std::string>())},
             {"by", pred->at("after")}};
    return out;
  }
  if (is_known(*pc)) return suffix.empty() ? *pc : live(pc->at("id").get<std::string>() + suffix);
  auto steps = first_parent_steps(suffix);
  static const json kNone = json::array();
  const json& made = pc->contains("made") ? pc->at("made") : kNone;
  json out = *pc;
  if (!steps || !made.is_array()) {
    out["id"] = unknown_value(unknown_why(pc->at("id")) + " " + suffix);
    out["made"] = json::array();
    out["base"] = nullptr;
    out.erase("files");
    return out;
  }
  if (*steps == 0) return *pc;
  int64_t m = static_cast<int64_t>(made.size());
  if (*steps < m) {
    out["id"] = unknown_value(unknown_why(pc->at("id")) + " ~" + std::to_string(*steps));
    out["made"] = json(made.begin() + *steps, made.end());
    out.erase("files");
    return out;
  }
  if (pc->contains("base") && pc->at("base").is_string())
    return live(pc->at("base").get<std::string>() + "~" + std::to_string(*steps - m));
  out["id"] = unknown_value(unknown_why(pc->at("id")) + " ~" + std::to_string(*steps));
  out["made"] = json::array();
  out["base"] = nullptr;
  out.erase("files");
  return out;
}

json resolve_predicted(git_repository* repo, const json* pred, const std::string& rev) {
  return resolve_predicted_with(repo, pred, rev, [repo](const std::string& r) {
    Commit c = resolve_commit(repo, r);
    return known_commit(*git_commit_id(c.get()));
  });
}

std::optional<std::vector<std::string>> predicted_dirty(git_repository* repo, const json* pred) {
  std::string wt = pred ? pred->value("worktree", std::string("live")) : "live";
  if (pred && pred->contains("unknown")) return std::nullopt;
  if (wt == "clean") return std::vector<std::string>{};
  if (wt == "unknown") return std::nullopt;
  if (wt == "dirty" && pred->contains("dirty")) {
    std::vector<std::string> out;
    for (const auto& d : pred->at("dirty"))
      if (d.is_string()) out.push_back(d.get<std::string>());
    return out;
  }
  if (wt == "dirty") return std::nullopt;
  Status st = status(repo, false, false);
  if (wt == "index_clean") return st.modified;
  return st.tracked_changes();
}

void taint_files(EffectContext& ctx, const std::string& after) {
  json& all = ctx.predictions();
  if (!all.is_object()) all = json::object();
  json& t = all["taint"];
  if (!t.is_object()) t = json::object();
  t["fs"] = after;
}

std::vector<std::string> predicted_untracked(const json* pred,
                                             const std::vector<std::string>& live) {
  if (!pred) return live;
  if (pred->value("untracked_gone", false)) return {};
  std::vector<std::string> removed;
  if (pred->contains("untracked_removed") && pred->at("untracked_removed").is_array())
    for (const auto& r : pred->at("untracked_removed"))
      if (r.is_string()) removed.push_back(r.get<std::string>());
  std::vector<std::string> out;
  for (const auto& f : live) {
    bool gone = false;
    for (std::string r : removed) {
      while (!r.empty() && r.back() == '/') r.pop_back();
      if (!r.empty() && (f == r || f == r + "/" || f.rfind(r + "/", 0) == 0)) gone = true;
    }
    if (!gone) out.push_back(f);
  }
  return out;
}

bool world_is_predicted(git_repository* repo, const json* pred) {
  if (!pred) return true;
  if (pred->contains("unknown") || pred->value("worktree", std::string()) != "live" ||
      pred->value("untracked_gone", false) || !pred->at("untracked_removed").empty())
    return false;
  Head h = head(repo);
  const json& ph = pred->at("head");
  if (h.unborn) return ph.is_null();
  return is_known(ph) && ph["id"] == hex(h.id);
}

std::string pc_label(git_repository* repo, const json& pc) {
  if (is_known(pc)) return label(repo, oid_of(pc));
  std::string by = pc.contains("by") && pc["by"].is_string() ? pc["by"].get<std::string>()
                                                            : "a planned change";
  return "(the commit " + by + " makes)";
}

json basis(git_repository* repo, const json& target) {
  Head h = head(repo);
  json b{{"head", h.unborn ? json(nullptr) : json(hex(h.id))}};
  b["target"] = is_known(target) ? target["id"] : json(nullptr);
  json dirty = json::array();
  if (!git_repository_is_bare(repo)) dirty = strings_json(status(repo, false, false).tracked_changes());
  b["dirty"] = dirty;
  return b;
}

json new_commits(json& p, const json& head, const json& made, const json& files,
                 const std::string& by) {
  int64_t n = p.value("made_count", int64_t{0}) + 1;
  p["made_count"] = n;
  json pc{{"id", unknown_value("commit #" + std::to_string(n) + ", made by " + by)}, {"by", by}};
  json all = made;
  if (is_known(head)) {
    pc["base"] = head["id"];
    pc["files"] = files;
  } else if (head.is_object()) {
    pc["base"] = head.contains("base") ? head["base"] : json(nullptr);
    if (head.contains("made") && head["made"].is_array())
      for (const auto& m : head["made"]) all.push_back(m);
  } else {
    pc["base"] = nullptr;  // no commits yet: the new one is the first
    pc["files"] = files;
  }
  pc["made"] = all;
  return pc;
}

void with_prediction(EffectContext& ctx, const Args& a, const json& pv, const std::string& after,
                     const std::function<void(git_repository*, json&)>& body) {
  Repo repo;
  try {
    repo = open(a);
  } catch (const EffectError&) {
    return;  // its preview said so; the dry-run does not get past it
  }
  json* pp = nullptr;
  try {
    pp = &predict_repo(ctx, repo.get(), after);
  } catch (const EffectError&) {
    return;
  }
  json& p = *pp;
  if (pv.is_null() || (pv.is_object() && pv.contains("error"))) {
    p["unknown"] = after;
    taint_files(ctx, after);
    return;
  }
  try {
    body(repo.get(), p);
  } catch (const EffectError&) {
    p["unknown"] = after;
    taint_files(ctx, after);
  }
}

}  // namespace rb::git
