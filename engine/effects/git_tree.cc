// git.stash, git.checkout, git.reset, git.clean: the changes that rewrite the work tree. None of
// them loses work: checkout refuses over uncommitted changes (or stashes them), reset --hard and
// clean leave a backup ref and a snapshot commit, and untracked files are moved into the run's
// artifacts instead of being deleted.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/git_repo.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb::git {
namespace {
namespace stdfs = std::filesystem;

json commit_json(const git_oid& id) { return json{{"commit", hex(id)}, {"short", short_hex(id)}}; }

// ---- stash ----------------------------------------------------------------------------------

void add_stash(Registry& r) {
  Effect e;
  e.name = "git.stash";
  e.summary =
      "Stash uncommitted changes (and untracked files if asked); nothing to stash is not an error";
  e.kind = Kind::Change;
  e.args = {repo_arg(), opt("message", ArgType::String, "the stash's message"),
            opt("untracked", ArgType::Bool, "stash untracked files too", false)};
  e.returns = "{ stashed = boolean, commit = the stash's sha or nil, ref = \"refs/stash\", files }";
  e.results = {{"stashed", "boolean", "whether anything was stashed"}, {"commit", "string", "the stash's sha, or nil"}, {"ref", "string", "\"refs/stash\""}, {"files", "list", "paths stashed"}};
  e.describe = [](const Args& a) {
    return "stash the changes in " + a.str("repo") +
           (a.boolean("untracked") ? " (with untracked files)" : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    const json* pred = predicted_repo(ctx, repo.get());
    Status st = status(repo.get());
    auto dirty = predicted_dirty(repo.get(), pred);
    std::vector<std::string> files = dirty ? *dirty : st.tracked_changes();
    if (a.boolean("untracked")) {
      auto u = predicted_untracked(pred, st.untracked);
      files.insert(files.end(), u.begin(), u.end());
    }
    json j{{"stashed", !files.empty()}, {"files", strings_json(files)}};
    j["text"] = files.empty() ? "nothing to stash"
                              : "stashes changes to " + plural(files.size(), "file", "files") +
                                    ": " + list_text(files);
    j["basis"] = basis(repo.get(), nullptr);
    return j;
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string after = "git.stash in " + a.str("repo");
    with_prediction(ctx, a, pv, after, [&](git_repository*, json& p) {
      p["worktree"] = "clean";
      if (a.boolean("untracked")) p["untracked_gone"] = true;
    });
    taint_files(ctx, after);
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    Status st = status(repo.get());
    std::vector<std::string> files = st.tracked_changes();
    if (a.boolean("untracked")) files.insert(files.end(), st.untracked.begin(), st.untracked.end());
    Signature sig = signature(repo.get());
    std::string msg = a.str_or("message", "runbook run " + std::to_string(ctx.run_id()));
    git_oid id;
    int rc =
        git_stash_save(&id, repo.get(), sig.get(), msg.c_str(),
                       a.boolean("untracked") ? GIT_STASH_INCLUDE_UNTRACKED : GIT_STASH_DEFAULT);
    if (rc == GIT_ENOTFOUND)
      return json{
          {"stashed", false}, {"commit", nullptr}, {"ref", "refs/stash"}, {"files", json::array()}};
    check(rc, "cannot stash the changes in " + a.str("repo"));
    return json{{"stashed", true},
                {"commit", hex(id)},
                {"ref", "refs/stash"},
                {"files", strings_json(files)}};
  };
  e.planned = [](const Args&, const json& pv) {
    bool stashed =
        pv_or(pv, "stashed", true).is_boolean() ? pv_or(pv, "stashed", true).get<bool>() : true;
    return json{{"stashed", stashed},
                {"commit", stashed ? json(kZeroSha) : json(nullptr)},
                {"ref", "refs/stash"},
                {"files", pv_or(pv, "files", json::array())}};
  };
  r.add(std::move(e));
}

// ---- checkout -------------------------------------------------------------------------------

// "main" or "refs/heads/main" when it names a local branch, else "".
std::string local_branch(git_repository* repo, const std::string& ref) {
  git_oid id;
  if (ref.rfind("refs/heads/", 0) == 0)
    return git_reference_name_to_id(&id, repo, ref.c_str()) == 0 ? ref : "";
  std::string full = "refs/heads/" + ref;
  return git_reference_name_to_id(&id, repo, full.c_str()) == 0 ? full : "";
}

// The local branch `ref` names, planned branches included (see local_branch).
std::string predicted_branch(git_repository* repo, const json* pred, const std::string& ref) {
  if (pred && pred->contains("refs")) {
    const json& refs = pred->at("refs");
    std::string full = ref.rfind("refs/heads/", 0) == 0 ? ref : "refs/heads/" + ref;
    if (refs.contains(full) && !refs.contains(ref) && !refs.contains("refs/tags/" + ref)) return full;
  }
  return local_branch(repo, ref);
}

git_oid oid_from(const json& sha) {
  git_oid id{};
  if (sha.is_string()) git_oid_fromstr(&id, sha.get<std::string>().c_str());
  return id;
}

std::string normalize_path(std::string p) {
  while (p.rfind("./", 0) == 0) p.erase(0, 2);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

struct FileEntry {
  std::string path;
  git_oid id;
  git_filemode_t mode;
};

// The files (blobs and links) under `paths` in `tree`; throws naming a path the tree lacks.
std::vector<FileEntry> files_under(git_tree* tree, const std::vector<std::string>& paths,
                                   const std::string& ref) {
  std::vector<FileEntry> out;
  for (const auto& raw : paths) {
    std::string p = normalize_path(raw);
    TreeEntry te;
    if (p.empty() || git_tree_entry_bypath(te.out(), tree, p.c_str()) < 0)
      throw EffectError("'" + raw + "' is not in " + ref);
    if (git_tree_entry_type(te.get()) == GIT_OBJECT_BLOB) {
      out.push_back({p, *git_tree_entry_id(te.get()), git_tree_entry_filemode(te.get())});
      continue;
    }
    if (git_tree_entry_type(te.get()) != GIT_OBJECT_TREE)
      continue;  // a submodule: not ours to write
    Tree sub;
    check(git_tree_lookup(sub.out(), git_tree_owner(tree), git_tree_entry_id(te.get())),
          "cannot read " + p);
    struct Walk {
      std::string base;
      std::vector<FileEntry>* out;
    } w{p, &out};
    git_tree_walk(
        sub.get(), GIT_TREEWALK_PRE,
        [](const char* root, const git_tree_entry* e, void* data) -> int {
          auto* w = static_cast<Walk*>(data);
          if (git_tree_entry_type(e) == GIT_OBJECT_BLOB)
            w->out->push_back({w->base + "/" + root + git_tree_entry_name(e), *git_tree_entry_id(e),
                               git_tree_entry_filemode(e)});
          return 0;
        },
        &w);
  }
  return out;
}

// Whether the work-tree file already holds exactly the blob (filters applied, as git compares).
bool same_as_blob(git_repository* repo, const FileEntry& f) {
  git_oid id;
  if (git_repository_hashfile(&id, repo, f.path.c_str(), GIT_OBJECT_BLOB, f.path.c_str()) < 0)
    return false;
  return git_oid_equal(&id, &f.id);
}

bool exists_in_worktree(git_repository* repo, const std::string& rel) {
  std::error_code ec;
  return stdfs::exists(stdfs::symlink_status(workdir(repo) + "/" + rel, ec));
}

void write_blob(git_repository* repo, const FileEntry& f) {
  Blob blob;
  check(git_blob_lookup(blob.out(), repo, &f.id), "cannot read " + f.path);
  std::string dest = workdir(repo) + "/" + f.path;
  std::error_code ec;
  stdfs::create_directories(stdfs::path(dest).parent_path(), ec);
  if (f.mode == GIT_FILEMODE_LINK) {
    std::string target(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                       static_cast<size_t>(git_blob_rawsize(blob.get())));
    stdfs::remove(dest, ec);
    if (::symlink(target.c_str(), dest.c_str()) != 0)
      throw EffectError("cannot create symlink " + dest);
    return;
  }
  git_buf buf = GIT_BUF_INIT;
  git_blob_filter_options fo = GIT_BLOB_FILTER_OPTIONS_INIT;
  check(git_blob_filter(&buf, blob.get(), f.path.c_str(), &fo), "cannot read " + f.path);
  std::string content(buf.ptr ? buf.ptr : "", buf.size);
  git_buf_dispose(&buf);
  try {
    os::atomic_write(dest, content, f.mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
  } catch (const std::exception& e) {
    throw EffectError(e.what());
  }
}

// checkout{ ref, paths }: like `git checkout <ref> -- <paths>`: overwrites those files from the
// ref (index too) and deletes nothing. Uncommitted content it overwrites is copied to artifacts.
json restore_paths(EffectContext& ctx, git_repository* repo, const Args& a) {
  Commit target = resolve_commit(repo, a.str("ref"));
  Tree tree = tree_of(target.get());
  const git_oid& tid = *git_commit_id(target.get());
  auto files =
      files_under(tree.get(), a.strings("paths"), a.str("ref") + " (" + label(repo, tid) + ")");
  Index idx;
  check(git_repository_index(idx.out(), repo), "cannot read the index");
  json written = json::array(), saved = json::array();
  std::string saved_to;
  std::error_code ec;
  for (const auto& f : files) {
    bool differs = !same_as_blob(repo, f);
    unsigned int st = 0;
    if (differs && exists_in_worktree(repo, f.path) &&
        git_status_file(&st, repo, f.path.c_str()) == 0 && st != GIT_STATUS_CURRENT) {
      if (saved_to.empty())
        saved_to =
            os::unique_path(stdfs::absolute(ctx.artifact_dir(), ec).lexically_normal().string() +
                            "/git-checkout-" + short_hex(tid));
      std::string to = saved_to + "/" + f.path;
      try {
        stdfs::create_directories(stdfs::path(to).parent_path(), ec);
        os::copy_path(workdir(repo) + "/" + f.path, to);
      } catch (const std::exception& e) {
        throw EffectError(std::string("cannot keep the uncommitted ") + f.path + ": " + e.what());
      }
      saved.push_back(json{{"path", f.path}, {"to", to}});
    }
    if (differs) {
      write_blob(repo, f);
      written.push_back(f.path);
    }
    check(git_index_add_bypath(idx.get(), f.path.c_str()), "cannot update the index for " + f.path);
  }
  check(git_index_write(idx.get()), "cannot write the index");
  json j{{"ref", a.str("ref")},     {"commit", hex(tid)},
         {"short", short_hex(tid)}, {"paths", strings_json(a.strings("paths"))},
         {"files", written},        {"saved", saved}};
  j["saved_to"] = saved_to.empty() ? json(nullptr) : json(saved_to);
  return j;
}

json preview_restore(git_repository* repo, const Args& a) {
  Commit target = resolve_commit(repo, a.str("ref"));
  Tree tree = tree_of(target.get());
  const git_oid& tid = *git_commit_id(target.get());
  auto files =
      files_under(tree.get(), a.strings("paths"), a.str("ref") + " (" + label(repo, tid) + ")");
  std::vector<std::string> change, keep;
  for (const auto& f : files) {
    if (same_as_blob(repo, f)) continue;
    change.push_back(f.path);
    unsigned int st = 0;
    if (exists_in_worktree(repo, f.path) && git_status_file(&st, repo, f.path.c_str()) == 0 &&
        st != GIT_STATUS_CURRENT)
      keep.push_back(f.path);
  }
  std::string text = change.empty()
                         ? "files already as in " + label(repo, tid) + "; nothing changes"
                         : "restores " + plural(change.size(), "file", "files") + " from " +
                               label(repo, tid) + ": " + list_text(change);
  if (!keep.empty())
    text += "; uncommitted content of " + list_text(keep) + " is kept in the run's artifacts";
  return json{{"text", text}, {"commit", hex(tid)}, {"files", strings_json(change)}};
}

struct CheckoutPlan {
  Commit target;
  git_oid tid{};
  std::string branch;  // full ref name, or "" for detached
  Head before;
  std::vector<std::string> changed;
  Status st;
};

CheckoutPlan plan_checkout(git_repository* repo, const Args& a) {
  CheckoutPlan p;
  p.target = resolve_commit(repo, a.str("ref"));
  p.tid = *git_commit_id(p.target.get());
  p.branch = local_branch(repo, a.str("ref"));
  p.before = head(repo);
  Tree nt = tree_of(p.target.get());
  if (p.before.unborn) {
    p.changed = diff_names(repo, nullptr, nt.get());
  } else {
    Commit hc = head_commit(repo);
    Tree ot = tree_of(hc.get());
    p.changed = diff_names(repo, ot.get(), nt.get());
  }
  p.st = status(repo, false, false);
  return p;
}

json checkout_result(git_repository* repo, const Args& a, const CheckoutPlan& p) {
  json j{{"ref", a.str("ref")}, {"commit", hex(p.tid)}, {"short", short_hex(p.tid)}};
  j["branch"] = p.branch.empty() ? json(nullptr) : json(p.branch.substr(11));
  j["detached"] = p.branch.empty();
  json prev = p.before.unborn ? json{{"commit", nullptr}} : commit_json(p.before.id);
  prev["ref"] = p.before.detached || p.before.ref.empty() ? json(nullptr) : json(p.before.ref);
  j["previous"] = prev;
  j["files"] = p.changed.size();
  j["changed"] = strings_json(p.changed);
  return j;
}

void add_checkout(Registry& r) {
  Effect e;
  e.name = "git.checkout";
  e.summary =
      "Move HEAD to a ref (a branch, or detached), or restore `paths` from a ref; refuses over "
      "uncommitted changes unless stash = true";
  e.kind = Kind::Change;
  e.args = {
      repo_arg(), req("ref", ArgType::String, "a branch, tag or commit"),
      opt("paths", ArgType::List,
          "restore only these files or directories from ref (partial rollback)"),
      opt("stash", ArgType::Bool, "stash uncommitted changes first instead of refusing", false)};
  e.returns =
      "{ ref, commit, short, branch or nil, detached, previous = { commit, short, ref }, files "
      "(count), "
      "changed = {...}, stash = sha or nil }; with paths: { ref, commit, paths, files, saved, "
      "saved_to }";
  e.results = {{"ref", "string", "the ref checked out"}, {"commit", "string", "sha"}, {"short", "string", "short sha"}, {"branch", "string", "branch, or nil"}, {"detached", "boolean", "whether HEAD is detached"}, {"previous", "table", "{ commit, short, ref } before"}, {"files", "integer", "files changed (count)"}, {"changed", "list", "paths changed"}, {"stash", "string", "sha of the stash made, or nil"}, {"paths", "list", "with paths: the paths"}, {"saved", "list", "with paths: paths saved first"}, {"saved_to", "string", "with paths: artifact directory"}, {"uncommitted", "list", "on failure: the changes that refused it"}, {"in_the_way", "list", "on failure: untracked files it would overwrite"}};
  e.describe = [](const Args& a) {
    if (a.has("paths"))
      return "restore " + list_text(a.strings("paths"), 3) + " from " + a.str("ref") + " in " +
             a.str("repo");
    return "check out " + a.str("ref") + " in " + a.str("repo");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    const json* pred = predicted_repo(ctx, repo.get());
    if (a.has("paths")) {
      json j = sure([&] { return preview_restore(repo.get(), a); });
      j["basis"] = basis(repo.get(), known_commit(oid_from(j["commit"])));
      return j;
    }
    json target = sure([&] { return resolve_predicted(repo.get(), pred, a.str("ref")); });
    std::string branch = predicted_branch(repo.get(), pred, a.str("ref"));
    json before;
    if (pred) {
      before = pred->at("head");
    } else {
      Head h = head(repo.get());
      before = h.unborn ? json(nullptr) : known_commit(h.id);
    }
    auto dirty = predicted_dirty(repo.get(), pred);
    if (dirty && !dirty->empty() && !a.boolean("stash"))
      throw WouldFail("uncommitted changes to " + list_text(*dirty) +
                          "; commit them, or pass stash = true to stash them first",
                      json{{"uncommitted", strings_json(*dirty)}});
    json changed = unknown_value("the files git.checkout " + a.str("ref") + " changes after " +
                                 (pred ? pred->value("after", std::string()) : std::string()));
    if (is_known(target) && (before.is_null() || is_known(before))) {
      git_oid tid = oid_of(target);
      Commit tc;
      check(git_commit_lookup(tc.out(), repo.get(), &tid), "cannot read " + hex(tid));
      Tree nt = tree_of(tc.get());
      if (before.is_null()) {
        changed = strings_json(diff_names(repo.get(), nullptr, nt.get()));
      } else {
        git_oid bid = oid_of(before);
        Commit bc;
        check(git_commit_lookup(bc.out(), repo.get(), &bid), "cannot read " + hex(bid));
        Tree ot = tree_of(bc.get());
        changed = strings_json(diff_names(repo.get(), ot.get(), nt.get()));
      }
      if (dirty && dirty->empty() && world_is_predicted(repo.get(), pred)) {
        auto in_way = checkout_conflicts(repo.get(), nt.get());
        if (!in_way.empty())
          throw WouldFail("local files are in the way: " + list_text(in_way) +
                              " (move them, or git.clean them into the run's artifacts)",
                          json{{"in_the_way", strings_json(in_way)}});
      }
    }
    json j{{"ref", a.str("ref")}};
    json u = unknown_value("the commit " + a.str("ref") + " names after " +
                           target.value("by", std::string("a planned change")));
    j["commit"] = is_known(target) ? target["id"] : u;
    j["short"] = is_known(target) ? json(target["id"].get<std::string>().substr(0, 7)) : u;
    j["branch"] = branch.empty() ? json(nullptr) : json(branch.substr(11));
    j["detached"] = branch.empty();
    json prev = is_known(before) ? json{{"commit", before["id"]},
                                        {"short", before["id"].get<std::string>().substr(0, 7)}}
                                 : json{{"commit", before.is_null() ? json(nullptr) : u}};
    if (pred)
      prev["ref"] = pred->at("ref");
    else {
      Head h = head(repo.get());
      prev["ref"] = h.detached || h.ref.empty() ? json(nullptr) : json(h.ref);
    }
    j["previous"] = prev;
    j["files"] = changed.is_array() ? json(changed.size()) : changed;
    j["changed"] = changed;
    std::string to = (branch.empty() ? "" : branch.substr(11) + " ") + pc_label(repo.get(), target);
    std::string text = "HEAD " +
                       (before.is_null() ? std::string("(no commits)") : pc_label(repo.get(), before)) +
                       " → " + to +
                       (changed.is_array()
                            ? ", " + plural(changed.size(), "file changes", "files change")
                            : std::string());
    if (dirty && !dirty->empty()) text += "; stashes uncommitted changes to " + list_text(*dirty) + " first";
    j["text"] = text;
    j["refused"] = false;
    j["basis"] = basis(repo.get(), target);
    return j;
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string after = "git.checkout " + a.str("ref") + " in " + a.str("repo");
    with_prediction(ctx, a, pv, after, [&](git_repository* repo, json& p) {
      if (a.has("paths")) {
        p["worktree"] = "unknown";  // the restored files are staged: changes against HEAD, or not
        return;
      }
      json target = resolve_predicted(repo, &p, a.str("ref"));
      std::string branch = predicted_branch(repo, &p, a.str("ref"));
      p["ref"] = branch.empty() ? json(nullptr) : json(branch);
      predict_head(p, target);
      p["worktree"] = "clean";
    });
    taint_files(ctx, after);
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    if (a.has("paths")) return restore_paths(ctx, repo.get(), a);
    CheckoutPlan p = plan_checkout(repo.get(), a);
    auto dirty = p.st.tracked_changes();
    json stash = nullptr;
    if (!dirty.empty()) {
      if (!a.boolean("stash"))
        throw EffectError("uncommitted changes to " + list_text(dirty) +
                              "; commit them, or pass stash = true to stash them first",
                          json{{"uncommitted", strings_json(dirty)}});
      Signature sig = signature(repo.get());
      git_oid sid;
      std::string msg =
          "runbook run " + std::to_string(ctx.run_id()) + ": before checkout of " + a.str("ref");
      check(git_stash_save(&sid, repo.get(), sig.get(), msg.c_str(), GIT_STASH_DEFAULT),
            "cannot stash the uncommitted changes");
      stash = hex(sid);
    }
    Tree nt = tree_of(p.target.get());
    try {
      safe_checkout(repo.get(), nt.get());
    } catch (const EffectError& err) {
      if (stash.is_null()) throw;
      // Put the changes back so a refused checkout leaves the tree as it found it.
      int rc = git_stash_pop(repo.get(), 0, nullptr);
      throw EffectError(std::string(err.what()) +
                            (rc == 0 ? "; the stashed changes were put back"
                                     : "; the changes stay stashed as " + stash.get<std::string>()),
                        err.result());
    }
    if (!p.branch.empty())
      check(git_repository_set_head(repo.get(), p.branch.c_str()),
            "cannot switch HEAD to " + p.branch);
    else
      check(git_repository_set_head_detached(repo.get(), &p.tid),
            "cannot detach HEAD at " + short_hex(p.tid));
    json j = checkout_result(repo.get(), a, p);
    j["stash"] = stash;
    return j;
  };
  e.planned = [](const Args& a, const json& pv) {
    std::string commit = pv_str(pv, "commit", kZeroSha);
    json j{{"ref", a.str("ref")}, {"commit", commit}, {"short", commit.substr(0, 7)}};
    if (a.has("paths")) {
      j["paths"] = a.at("paths");
      j["files"] = pv_or(pv, "files", json::array());
      j["saved"] = json::array();
      return j;
    }
    j["branch"] = pv_or(pv, "branch", nullptr);
    j["detached"] = pv_or(pv, "detached", true);
    j["previous"] = pv_or(pv, "previous", json{{"commit", nullptr}});
    j["files"] = pv_or(pv, "files", 0);
    j["changed"] = pv_or(pv, "changed", json::array());
    j["stash"] = a.boolean("stash") ? json(kZeroSha) : json(nullptr);
    return j;
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    Commit target = resolve_commit(repo.get(), a.str("ref"));
    if (a.has("paths")) {
      Tree tree = tree_of(target.get());
      for (const auto& f : files_under(tree.get(), a.strings("paths"), a.str("ref")))
        if (!same_as_blob(repo.get(), f)) return false;
      return true;
    }
    if (moves_with_head(repo.get(), a.str("ref"), false)) return nullptr;
    Head h = head(repo.get());
    if (h.unborn || !git_oid_equal(&h.id, git_commit_id(target.get()))) return false;
    std::string branch = local_branch(repo.get(), a.str("ref"));
    return branch.empty() ? h.detached : h.ref == branch;
  };
  r.add(std::move(e));
}

// ---- reset ----------------------------------------------------------------------------------

// Whether checking out `tree` would write over `rel` (a file or dir, relative): the tree has
// something at that path, or a file where one of its parent directories is.
bool in_the_way(git_tree* tree, const std::string& rel) {
  TreeEntry te;
  if (git_tree_entry_bypath(te.out(), tree, rel.c_str()) == 0) return true;
  for (stdfs::path dir = stdfs::path(rel).parent_path(); !dir.empty(); dir = dir.parent_path()) {
    TreeEntry pe;
    if (git_tree_entry_bypath(pe.out(), tree, dir.string().c_str()) == 0)
      return git_tree_entry_type(pe.get()) != GIT_OBJECT_TREE;
  }
  return false;
}

// Untracked and ignored paths that a hard reset to `tree` would overwrite.
std::vector<std::string> untracked_in_the_way(git_repository* repo, git_tree* tree) {
  Status st = status(repo, true, true);
  std::vector<std::string> out;
  for (const auto* list : {&st.untracked, &st.ignored})
    for (const auto& p : *list) {
      std::string rel = normalize_path(p);
      if (!rel.empty() && in_the_way(tree, rel)) out.push_back(p);
    }
  return out;
}

git_reset_t reset_mode(const Args& a) {
  if (a.boolean("hard")) return GIT_RESET_HARD;
  return a.boolean("soft") ? GIT_RESET_SOFT : GIT_RESET_MIXED;
}
const char* mode_name(git_reset_t m) {
  return m == GIT_RESET_HARD ? "hard" : m == GIT_RESET_SOFT ? "soft" : "mixed";
}

std::string backup_ref_text(int64_t run_id, int n) {
  return "refs/runbook/backup/" + std::to_string(run_id) + "/" + std::to_string(n);
}

void add_reset(Registry& r) {
  Effect e;
  e.name = "git.reset";
  e.summary =
      "Move HEAD (and its branch) to a ref; hard = true also resets the work tree, after a backup "
      "ref, a "
      "snapshot of uncommitted changes, and moving untracked files in the way to the run's "
      "artifacts";
  e.kind = Kind::Change;
  e.args = {repo_arg(), req("ref", ArgType::String, "where HEAD goes"),
            opt("hard", ArgType::Bool, "reset the index and work tree too (guarded)", false),
            opt("soft", ArgType::Bool, "move HEAD only, keep the index", false)};
  e.returns =
      "{ ref, commit, short, previous = { commit, short }, mode, files, changed, "
      "backup = { ref, head, changes_ref, changes } or nil, moved = {...}, moved_to }";
  e.results = {{"ref", "string", "the target"}, {"commit", "string", "sha"}, {"short", "string", "short sha"}, {"previous", "table", "{ commit, short } before"}, {"mode", "string", "soft, mixed or hard"}, {"files", "integer", "files changed"}, {"changed", "list", "paths changed"}, {"backup", "table", "{ ref, head, changes_ref, changes }, or nil"}, {"moved", "list", "untracked paths moved away"}, {"moved_to", "string", "artifact directory"}, {"uncommitted", "list", "on failure: the changes that refused it"}, {"in_the_way", "list", "on failure: untracked files in the way"}};
  e.describe = [](const Args& a) {
    return "reset " + a.str("repo") + " to " + a.str("ref") + (a.boolean("hard") ? " (hard)" : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    const json* pred = predicted_repo(ctx, repo.get());
    json target = sure([&] { return resolve_predicted(repo.get(), pred, a.str("ref")); });
    json before;
    if (pred) {
      before = pred->at("head");
      if (before.is_null()) throw WouldFail(where(repo.get()) + " has no commits yet");
    } else {
      Commit hc = sure([&] { return head_commit(repo.get()); });
      before = known_commit(*git_commit_id(hc.get()));
    }
    std::string after = pred ? pred->value("after", std::string()) : std::string();
    json changed = unknown_value("the files git.reset " + a.str("ref") + " changes after " + after);
    Tree nt;
    if (is_known(target)) {
      git_oid tid = oid_of(target);
      Commit tc;
      check(git_commit_lookup(tc.out(), repo.get(), &tid), "cannot read " + hex(tid));
      nt = tree_of(tc.get());
      if (is_known(before)) {
        git_oid bid = oid_of(before);
        Commit bc;
        check(git_commit_lookup(bc.out(), repo.get(), &bid), "cannot read " + hex(bid));
        Tree ot = tree_of(bc.get());
        changed = strings_json(diff_names(repo.get(), ot.get(), nt.get()));
      }
    }
    std::string text = "HEAD " + pc_label(repo.get(), before) + " → " +
                       pc_label(repo.get(), target) +
                       (changed.is_array()
                            ? ", " + plural(changed.size(), "file changes", "files change")
                            : std::string());
    json u = unknown_value("the commit " + a.str("ref") + " names after " + after);
    json prev = is_known(before) ? json{{"commit", before["id"]},
                                        {"short", before["id"].get<std::string>().substr(0, 7)}}
                                 : json{{"commit", u}, {"short", u}};
    json j{{"commit", is_known(target) ? target["id"] : u},
           {"mode", mode_name(reset_mode(a))},
           {"previous", prev},
           {"files", changed.is_array() ? json(changed.size()) : changed},
           {"changed", changed},
           {"moved", json::array()}};
    if (reset_mode(a) == GIT_RESET_HARD) {
      int n = next_backup_n(repo.get(), ctx.run_id());
      std::string prefix = backup_ref_text(ctx.run_id(), n);
      text += "; backs up HEAD to " + prefix + "/head";
      auto dirty = predicted_dirty(repo.get(), pred);
      if (dirty && !dirty->empty())
        text += ", uncommitted changes to " + list_text(*dirty) + " to " + prefix + "/changes";
      std::vector<std::string> way;
      if (nt) {
        Status st = status(repo.get(), true, true);
        std::vector<std::string> left = predicted_untracked(pred, st.untracked);
        for (const auto& q : predicted_untracked(pred, st.ignored)) left.push_back(q);
        for (const auto& q : untracked_in_the_way(repo.get(), nt.get()))
          if (std::find(left.begin(), left.end(), q) != left.end()) way.push_back(q);
      }
      if (!way.empty())
        text += "; moves untracked " + list_text(way) + " (in the way) to the run's artifacts";
      j["backup"] = json{{"ref", prefix + "/head"},
                         {"head", is_known(before) ? before["id"] : u},
                         {"changes_ref", dirty && dirty->empty() ? json(nullptr)
                                                                 : json(prefix + "/changes")}};
      j["moved"] = strings_json(way);
    }
    j["text"] = text;
    j["basis"] = basis(repo.get(), target);
    return j;
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string after = "git.reset " + a.str("ref") + " in " + a.str("repo");
    with_prediction(ctx, a, pv, after, [&](git_repository* repo, json& p) {
      p["worktree_before"] = p["worktree"];
      predict_head(p, resolve_predicted(repo, &p, a.str("ref")));
      if (reset_mode(a) == GIT_RESET_HARD) {
        p["worktree"] = "clean";
        for (const auto& m : pv_or(pv, "moved", json::array())) p["untracked_removed"].push_back(m);
      } else {
        p["worktree"] = "unknown";
        // The work tree stays; against the new HEAD its files differ where the commits do
        // (mixed: those the new index tracks; soft: all of them, staged).
        json before = pv_or(pv, "previous", json());
        json changed = pv_or(pv, "changed", json());
        std::string was = p.value("worktree_before", std::string());
        if (changed.is_array() && before.is_object() && before.value("commit", json()).is_string()) {
          json target = resolve_predicted(repo, &p, a.str("ref"));
          if (is_known(target)) {
            git_oid tid = oid_of(target);
            Commit tc;
            check(git_commit_lookup(tc.out(), repo, &tid), "cannot read " + hex(tid));
            Tree tt = tree_of(tc.get());
            std::set<std::string> dirty;
            for (const auto& c : changed) {
              TreeEntry te;
              if (reset_mode(a) == GIT_RESET_SOFT ||
                  git_tree_entry_bypath(te.out(), tt.get(), c.get<std::string>().c_str()) == 0)
                dirty.insert(c.get<std::string>());
            }
            if (was == "live")
              for (const auto& d : status(repo, false, false).tracked_changes()) dirty.insert(d);
            if (was == "live" || was == "clean") {
              p["worktree"] = dirty.empty() ? "clean" : "dirty";
              p["dirty"] = strings_json({dirty.begin(), dirty.end()});
            }
          }
        }
      }
    });
    if (reset_mode(a) == GIT_RESET_HARD) taint_files(ctx, after);
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    Commit target = resolve_commit(repo.get(), a.str("ref"));
    const git_oid& tid = *git_commit_id(target.get());
    Commit hc = head_commit(repo.get());
    Tree ot = tree_of(hc.get()), nt = tree_of(target.get());
    auto changed = diff_names(repo.get(), ot.get(), nt.get());
    git_reset_t mode = reset_mode(a);
    json j{{"ref", a.str("ref")},
           {"commit", hex(tid)},
           {"short", short_hex(tid)},
           {"previous", commit_json(*git_commit_id(hc.get()))},
           {"mode", mode_name(mode)},
           {"files", changed.size()},
           {"changed", strings_json(changed)},
           {"backup", nullptr},
           {"moved", json::array()},
           {"moved_to", nullptr}};
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
    if (mode == GIT_RESET_HARD) {
      Backup b = make_backup(ctx, repo.get(), "reset --hard to " + a.str("ref"));
      j["backup"] = b.to_json();
      auto way = untracked_in_the_way(repo.get(), nt.get());
      if (!way.empty()) {
        j["moved_to"] = move_to_artifacts(ctx, repo.get(), "reset", b.n, way);
        j["moved"] = strings_json(way);
      }
      co.checkout_strategy = GIT_CHECKOUT_FORCE;
    }
    check(git_reset(repo.get(), reinterpret_cast<git_object*>(target.get()), mode,
                    mode == GIT_RESET_HARD ? &co : nullptr),
          "cannot reset to " + a.str("ref"));
    return j;
  };
  e.planned = [](const Args& a, const json& pv) {
    std::string commit = pv_str(pv, "commit", kZeroSha);
    json j{{"ref", a.str("ref")},
           {"commit", commit},
           {"short", commit.substr(0, 7)},
           {"previous", pv_or(pv, "previous", json{{"commit", nullptr}})},
           {"mode", mode_name(reset_mode(a))},
           {"files", pv_or(pv, "files", 0)},
           {"changed", pv_or(pv, "changed", json::array())},
           {"backup", pv_or(pv, "backup", nullptr)},
           {"moved", pv_or(pv, "moved", json::array())}};
    j["moved_to"] =
        j["moved"].empty() ? json(nullptr) : json("(the run's artifacts)/git-reset-<n>");
    return j;
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    if (moves_with_head(repo.get(), a.str("ref"), true)) return nullptr;
    Commit target = resolve_commit(repo.get(), a.str("ref"));
    Head h = head(repo.get());
    return !h.unborn && git_oid_equal(&h.id, git_commit_id(target.get()));
  };
  r.add(std::move(e));
}

// ---- clean ----------------------------------------------------------------------------------

// Whether `path` is one of `keep`, or inside one of them (a directory, with or without its /).
bool kept(const std::string& path, const std::vector<std::string>& keep) {
  for (std::string k : keep) {
    while (!k.empty() && k.back() == '/') k.pop_back();
    if (k.empty()) continue;
    if (path == k || path == k + "/" || path.rfind(k + "/", 0) == 0) return true;
  }
  return false;
}

std::vector<std::string> clean_paths(git_repository* repo, const Args& a) {
  bool ignored = a.boolean("ignored");
  Status st = status(repo, ignored, true);
  std::vector<std::string> all = st.untracked;
  if (ignored) all.insert(all.end(), st.ignored.begin(), st.ignored.end());
  std::vector<std::string> keep = a.has("exclude") ? a.strings("exclude") : std::vector<std::string>{};
  std::vector<std::string> paths;
  for (auto& p : all)
    if (!kept(p, keep)) paths.push_back(std::move(p));
  std::sort(paths.begin(), paths.end());
  return paths;
}

void add_clean(Registry& r) {
  Effect e;
  e.name = "git.clean";
  e.summary =
      "Remove untracked files (and ignored ones if asked) by moving them into the run's artifacts, "
      "after a backup ref";
  e.kind = Kind::Change;
  e.args = {repo_arg(),
            opt("ignored", ArgType::Bool, "ignored files too (like git clean -x)", false),
            opt("exclude", ArgType::List,
                "paths to keep, relative to the repository: files, or directories and all inside "
                "them (like git clean -e): { \".env\", \"data/\" }")};
  e.returns =
      "{ moved = {...}, count, moved_to = artifact directory or nil, backup = { ref, head, ... } "
      "or nil }";
  e.results = {{"moved", "list", "paths moved away"}, {"count", "integer", "how many"}, {"moved_to", "string", "artifact directory, or nil"}, {"backup", "table", "{ ref, head, ... }, or nil"}};
  e.describe = [](const Args& a) {
    std::string keep = a.has("exclude") ? ", except " + join(a.strings("exclude"), ", ") : "";
    return "clean " + a.str("repo") + (a.boolean("ignored") ? " (ignored files too)" : "") + keep +
           ", keeping what it removes in the run's artifacts";
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    auto paths = predicted_untracked(predicted_repo(ctx, repo.get()), clean_paths(repo.get(), a));
    json j{{"moved", strings_json(paths)}, {"count", paths.size()}};
    j["basis"] = basis(repo.get(), nullptr);
    j["basis"]["untracked"] = strings_json(paths);
    if (paths.empty()) {
      j["text"] = "nothing to clean";
      return j;
    }
    std::string prefix = backup_ref_text(ctx.run_id(), next_backup_n(repo.get(), ctx.run_id()));
    j["text"] = "moves " + plural(paths.size(), "path", "paths") +
                " to the run's artifacts: " + list_text(paths, 10) + "; backs up HEAD to " +
                prefix + "/head";
    return j;
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string after = "git.clean in " + a.str("repo");
    with_prediction(ctx, a, pv, after, [&](git_repository*, json& p) {
      for (const auto& m : pv_or(pv, "moved", json::array())) p["untracked_removed"].push_back(m);
    });
    taint_files(ctx, after);
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    auto paths = clean_paths(repo.get(), a);
    json j{{"moved", strings_json(paths)},
           {"count", paths.size()},
           {"moved_to", nullptr},
           {"backup", nullptr}};
    if (paths.empty()) return j;
    Backup b = make_backup(ctx, repo.get(), "clean");
    j["backup"] = b.to_json();
    j["moved_to"] = move_to_artifacts(ctx, repo.get(), "clean", b.n, paths);
    return j;
  };
  e.planned = [](const Args&, const json& pv) {
    json moved = pv_or(pv, "moved", json::array());
    return json{
        {"moved", moved},
        {"count", moved.size()},
        {"moved_to", moved.empty() ? json(nullptr) : json("(the run's artifacts)/git-clean-<n>")},
        {"backup", nullptr}};
  };
  e.verify = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    return clean_paths(repo.get(), a).empty();
  };
  r.add(std::move(e));
}

}  // namespace

void register_tree_effects(Registry& r) {
  add_stash(r);
  add_checkout(r);
  add_reset(r);
  add_clean(r);
}

}  // namespace rb::git
