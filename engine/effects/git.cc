// git.*: the repository as probes (head, status, rev_parse, log, diff_names) and the changes
// that add to it (commit, tag, branch). Work-tree changes are in git_tree.cc, history in
// git_history.cc, remotes in git_remote.cc. All in-process through libgit2: no `git` is ever
// spawned.
#include <set>

#include "core/clock.h"
#include "core/error.h"
#include "effects/effects.h"
#include "effects/git_repo.h"
#include "effects/util.h"

namespace rb {
namespace {
using namespace rb::git;

void add_head(Registry& r) {
  Effect e;
  e.name = "git.head";
  e.summary = "Where HEAD is: its commit, branch (nil when detached) and the tag on it, if any";
  e.args = {repo_arg()};
  e.positional = {"repo"};
  e.returns =
      "{ commit, short, ref = \"refs/heads/main\" or nil, branch, detached, tag, tags, summary }";
  e.describe = [](const Args& a) { return "read HEAD of " + a.str("repo"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    Head h = head(repo.get());
    if (h.unborn) throw EffectError(a.str("repo") + " has no commits yet");
    Commit c;
    check(git_commit_lookup(c.out(), repo.get(), &h.id), "cannot read HEAD's commit");
    auto tags = tags_at(repo.get(), h.id);
    json j{{"commit", hex(h.id)}, {"short", short_hex(h.id)}};
    j["ref"] = h.detached ? json(nullptr) : json(h.ref);
    j["branch"] = h.detached ? json(nullptr)
                             : json(h.ref.substr(h.ref.rfind("refs/heads/", 0) == 0 ? 11 : 0));
    j["detached"] = h.detached;
    j["tag"] = tags.empty() ? json(nullptr) : json(tags.front());
    j["tags"] = strings_json(tags);
    j["summary"] = summary_of(c.get());
    return j;
  };
  e.planned = [](const Args&, const json&) {
    return json{{"commit", kZeroSha},
                {"short", kZeroSha.substr(0, 7)},
                {"detached", false},
                {"tags", json::array()},
                {"summary", ""}};
  };
  r.add(std::move(e));
}

void add_status(Registry& r) {
  Effect e;
  e.name = "git.status";
  e.summary = "Uncommitted changes: modified and staged tracked files, untracked files";
  e.args = {repo_arg()};
  e.positional = {"repo"};
  e.returns =
      "{ clean, tracked_clean, modified = {...}, staged = {...}, untracked = {...}, conflicted = "
      "{...} }";
  e.describe = [](const Args& a) { return "read the status of " + a.str("repo"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    Status s = status(repo.get());
    return json{{"clean", !s.tracked_dirty() && s.untracked.empty()},
                {"tracked_clean", !s.tracked_dirty()},
                {"modified", strings_json(s.modified)},
                {"staged", strings_json(s.staged)},
                {"untracked", strings_json(s.untracked)},
                {"conflicted", strings_json(s.conflicted)}};
  };
  e.planned = [](const Args&, const json&) {
    return json{
        {"clean", true},           {"tracked_clean", true},      {"modified", json::array()},
        {"staged", json::array()}, {"untracked", json::array()}, {"conflicted", json::array()}};
  };
  r.add(std::move(e));
}

void add_rev_parse(Registry& r) {
  Effect e;
  e.name = "git.rev_parse";
  e.summary = "The full sha of a revision (a tag or branch is followed to its commit)";
  e.args = {repo_arg(),
            req("ref", ArgType::String, "a revision: \"HEAD~1\", \"v1.0.0\", a short sha")};
  e.positional = {"repo", "ref"};
  e.returns = "sha string";
  e.describe = [](const Args& a) { return "resolve " + a.str("ref") + " in " + a.str("repo"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    Object o;
    int rc = git_revparse_single(o.out(), repo.get(), a.str("ref").c_str());
    if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
      throw EffectError("unknown ref '" + a.str("ref") + "' in " + a.str("repo"));
    check(rc, "cannot resolve '" + a.str("ref") + "'");
    Object c;
    // A tag means its commit (as `rev-parse v1^{commit}`); a tree or blob stays itself.
    if (git_object_peel(c.out(), o.get(), GIT_OBJECT_COMMIT) == 0)
      return hex(*git_object_id(c.get()));
    return hex(*git_object_id(o.get()));
  };
  e.planned = [](const Args&, const json&) -> json { return kZeroSha; };
  r.add(std::move(e));
}

void add_log(Registry& r) {
  Effect e;
  e.name = "git.log";
  e.summary = "Recent commits reachable from a ref, newest first";
  e.args = {
      repo_arg(),
      opt("ref", ArgType::String, "where to start, or a range \"A..B\" (in B, not in A)", "HEAD"),
      opt("max", ArgType::Int, "at most this many commits", 10)};
  e.positional = {"repo"};
  e.returns = "list of { commit, short, summary, author, email, time (epoch seconds), date (ISO) }";
  e.describe = [](const Args& a) {
    return "list commits of " + a.str("ref") + " in " + a.str("repo");
  };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    std::string ref = a.str("ref"), hide;
    if (auto dots = ref.find(".."); dots != std::string::npos) {
      hide = ref.substr(0, dots);
      ref = ref.substr(dots + 2);
      if (ref.empty()) ref = "HEAD";
    }
    Commit start = resolve_commit(repo.get(), ref);
    Revwalk walk;
    check(git_revwalk_new(walk.out(), repo.get()), "cannot walk history");
    // Children before parents even within one second; by date otherwise, as `git log`.
    git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
    check(git_revwalk_push(walk.get(), git_commit_id(start.get())), "cannot walk from " + ref);
    if (!hide.empty()) {
      Commit stop = resolve_commit(repo.get(), hide);
      check(git_revwalk_hide(walk.get(), git_commit_id(stop.get())), "cannot walk to " + hide);
    }
    json out = json::array();
    git_oid id;
    int64_t max = a.integer("max");
    while (static_cast<int64_t>(out.size()) < max && git_revwalk_next(&id, walk.get()) == 0) {
      Commit c;
      check(git_commit_lookup(c.out(), repo.get(), &id), "cannot read commit " + hex(id));
      const git_signature* au = git_commit_author(c.get());
      out.push_back(json{{"commit", hex(id)},
                         {"short", short_hex(id)},
                         {"summary", summary_of(c.get())},
                         {"author", au->name ? au->name : ""},
                         {"email", au->email ? au->email : ""},
                         {"time", static_cast<int64_t>(git_commit_time(c.get()))},
                         {"date", iso_utc(static_cast<int64_t>(git_commit_time(c.get())) * 1000)}});
    }
    return out;
  };
  e.planned = [](const Args&, const json&) { return json::array(); };
  r.add(std::move(e));
}

void add_diff_names(Registry& r) {
  Effect e;
  e.name = "git.diff_names";
  e.summary = "Paths that differ between two revisions";
  e.args = {repo_arg(), req("from", ArgType::String, "the older revision"),
            opt("to", ArgType::String, "the newer revision", "HEAD"),
            opt("worktree", ArgType::Bool,
                "compare from with the work tree instead, uncommitted changes included (git diff "
                "--name-only <from>)",
                false)};
  e.positional = {"repo", "from", "to"};
  e.returns = "list of paths, sorted";
  e.describe = [](const Args& a) {
    return "list files changed " + a.str("from") + ".." + a.str("to") + " in " + a.str("repo");
  };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    Commit from = resolve_commit(repo.get(), a.str("from"));
    Tree ft = tree_of(from.get());
    if (a.boolean("worktree")) {
      require_workdir(repo.get(), a.str("repo"));
      Diff d;
      check(git_diff_tree_to_workdir_with_index(d.out(), repo.get(), ft.get(), nullptr),
            "cannot diff " + a.str("from") + " with the work tree");
      std::set<std::string> names;
      for (size_t i = 0; i < git_diff_num_deltas(d.get()); ++i) {
        const git_diff_delta* dd = git_diff_get_delta(d.get(), i);
        names.insert(dd->old_file.path);
        names.insert(dd->new_file.path);
      }
      return strings_json({names.begin(), names.end()});
    }
    Commit to = resolve_commit(repo.get(), a.str("to"));
    Tree tt = tree_of(to.get());
    return strings_json(diff_names(repo.get(), ft.get(), tt.get()));
  };
  e.planned = [](const Args&, const json&) { return json::array(); };
  r.add(std::move(e));
}

// The commit a ref names now, or nullopt when the ref does not exist.
std::optional<git_oid> ref_commit(git_repository* repo, const std::string& name) {
  Reference ref;
  if (git_reference_lookup(ref.out(), repo, name.c_str()) < 0) return std::nullopt;
  Object o;
  if (git_reference_peel(o.out(), ref.get(), GIT_OBJECT_COMMIT) < 0) return std::nullopt;
  return *git_object_id(o.get());
}

void check_ref_name(const std::string& full, const std::string& what) {
  int valid = 0;
  if (git_reference_name_is_valid(&valid, full.c_str()) < 0 || !valid)
    throw EffectError("'" + what + "' is not a valid name");
}

// tag and branch: a named ref at a commit. `prefix` is "refs/tags/" or "refs/heads/".
struct RefPlan {
  std::string full;
  git_oid target{};
  std::optional<git_oid> previous;
  std::string text;
  bool refused = false;
};

RefPlan plan_ref(git_repository* repo, const Args& a, const std::string& prefix,
                 const std::string& noun) {
  RefPlan p;
  p.full = prefix + a.str("name");
  check_ref_name(p.full, a.str("name"));
  Commit c = resolve_commit(repo, a.str("ref"));
  p.target = *git_commit_id(c.get());
  p.previous = ref_commit(repo, p.full);
  p.text = noun + " " + a.str("name") + " → " + label(repo, p.target);
  if (p.previous && !git_oid_equal(&*p.previous, &p.target)) {
    if (a.boolean("force")) p.text += " (moves it from " + label(repo, *p.previous) + ")";
  }
  if (p.previous && !a.boolean("force")) {
    p.refused = true;
    p.text += "; would be refused: it exists at " + label(repo, *p.previous) +
              " (force = true replaces it)";
  }
  return p;
}

json ref_result(git_repository* repo, const Args& a, const RefPlan& p) {
  json j{{"name", a.str("name")},
         {"ref", p.full},
         {"commit", hex(p.target)},
         {"short", short_hex(p.target)}};
  j["previous"] = p.previous ? json(hex(*p.previous)) : json(nullptr);
  return j;
}

json ref_planned(const Args& a, const json& pv, const std::string& prefix) {
  std::string commit = pv_str(pv, "commit", kZeroSha);
  return json{{"name", a.str("name")},
              {"ref", prefix + a.str("name")},
              {"commit", commit},
              {"short", commit.substr(0, 7)},
              {"previous", pv_or(pv, "previous", nullptr)}};
}

// git.tag and git.branch: the result they would give, with the sentence and whether it is refused.
json ref_preview(const Args& a, const std::string& prefix, const std::string& kind,
                 const std::string& note = "") {
  Repo repo = open(a);
  RefPlan p = plan_ref(repo.get(), a, prefix, kind);
  json j = ref_result(repo.get(), a, p);
  j["text"] = p.text + note;
  j["refused"] = p.refused;
  return j;
}

json ref_verify(const Args& a, const std::string& prefix) {
  Repo repo = open(a);
  Commit c = resolve_commit(repo.get(), a.str("ref"));
  auto at = ref_commit(repo.get(), prefix + a.str("name"));
  return at && git_oid_equal(&*at, git_commit_id(c.get()));
}

void add_tag(Registry& r) {
  Effect e;
  e.name = "git.tag";
  e.summary =
      "Tag a commit (annotated when a message is given); an existing tag is refused unless force";
  e.kind = Kind::Change;
  e.args = {repo_arg(), req("name", ArgType::String, "the tag: \"emergency-backup\""),
            opt("ref", ArgType::String, "what to tag", "HEAD"),
            opt("message", ArgType::String, "makes an annotated tag with this message"),
            opt("force", ArgType::Bool, "replace an existing tag of that name", false)};
  e.returns =
      "{ name, ref = \"refs/tags/<name>\", commit, short, annotated, previous = sha it replaced or "
      "nil }";
  e.describe = [](const Args& a) {
    return "tag " + a.str("ref") + " as " + a.str("name") + " in " + a.str("repo");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    return ref_preview(a, "refs/tags/", "tag", a.has("message") ? " (annotated)" : "");
  };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    RefPlan p = plan_ref(repo.get(), a, "refs/tags/", "tag");
    if (p.previous && !a.boolean("force"))
      throw EffectError("tag '" + a.str("name") + "' already exists at " +
                        label(repo.get(), *p.previous) + " (force = true replaces it)");
    Object target;
    check(git_object_lookup(target.out(), repo.get(), &p.target, GIT_OBJECT_COMMIT),
          "cannot read the commit");
    git_oid id;
    if (a.has("message")) {
      Signature sig = signature(repo.get());
      check(git_tag_create(&id, repo.get(), a.str("name").c_str(), target.get(), sig.get(),
                           a.str("message").c_str(), a.boolean("force")),
            "cannot create tag '" + a.str("name") + "'");
    } else {
      check(git_tag_create_lightweight(&id, repo.get(), a.str("name").c_str(), target.get(),
                                       a.boolean("force")),
            "cannot create tag '" + a.str("name") + "'");
    }
    json j = ref_result(repo.get(), a, p);
    j["annotated"] = a.has("message");
    return j;
  };
  e.planned = [](const Args& a, const json& pv) {
    json j = ref_planned(a, pv, "refs/tags/");
    j["annotated"] = a.has("message");
    return j;
  };
  e.verify = [](EffectContext&, const Args& a) -> json { return ref_verify(a, "refs/tags/"); };
  r.add(std::move(e));
}

void add_branch(Registry& r) {
  Effect e;
  e.name = "git.branch";
  e.summary =
      "Create a branch at a commit (an existing one is refused unless force); HEAD does not move";
  e.kind = Kind::Change;
  e.args = {repo_arg(), req("name", ArgType::String, "the branch: \"backup/before-rollback\""),
            opt("ref", ArgType::String, "where it starts", "HEAD"),
            opt("force", ArgType::Bool, "move an existing branch of that name", false)};
  e.returns =
      "{ name, ref = \"refs/heads/<name>\", commit, short, previous = sha it was at or nil }";
  e.describe = [](const Args& a) {
    return "create branch " + a.str("name") + " at " + a.str("ref") + " in " + a.str("repo");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    return ref_preview(a, "refs/heads/", "branch");
  };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    RefPlan p = plan_ref(repo.get(), a, "refs/heads/", "branch");
    if (p.previous && !a.boolean("force"))
      throw EffectError("branch '" + a.str("name") + "' already exists at " +
                        label(repo.get(), *p.previous) + " (force = true moves it)");
    Commit c;
    check(git_commit_lookup(c.out(), repo.get(), &p.target), "cannot read the commit");
    Reference out;
    check(git_branch_create(out.out(), repo.get(), a.str("name").c_str(), c.get(),
                            a.boolean("force")),
          "cannot create branch '" + a.str("name") + "'");
    return ref_result(repo.get(), a, p);
  };
  e.planned = [](const Args& a, const json& pv) { return ref_planned(a, pv, "refs/heads/"); };
  e.verify = [](EffectContext&, const Args& a) -> json { return ref_verify(a, "refs/heads/"); };
  r.add(std::move(e));
}

// Stages everything (git add -A) in the repository's index, in memory.
void stage_all(git_index* idx) {
  check(git_index_add_all(idx, nullptr, GIT_INDEX_ADD_DEFAULT, nullptr, nullptr),
        "cannot stage the changes");
  check(git_index_update_all(idx, nullptr, nullptr, nullptr), "cannot stage the deletions");
}

void add_commit(Registry& r) {
  Effect e;
  e.name = "git.commit";
  e.summary =
      "Commit on HEAD: every change (all = true, like git add -A) or what is staged; nothing to "
      "commit is "
      "not an error";
  e.kind = Kind::Change;
  e.args = {repo_arg(), req("message", ArgType::String, "the commit message"),
            opt("all", ArgType::Bool,
                "stage every change first, untracked files included (ignored ones not)", true),
            opt("allow_empty", ArgType::Bool, "commit even when nothing changed", false)};
  e.returns = "{ committed = boolean, commit = HEAD after, short, files = {...} }";
  e.describe = [](const Args& a) {
    return "commit \"" + a.str("message") + "\" in " + a.str("repo");
  };
  e.preview = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    Status st = status(repo.get());
    std::vector<std::string> files = a.boolean("all") ? st.tracked_changes() : st.staged;
    if (a.boolean("all")) files.insert(files.end(), st.untracked.begin(), st.untracked.end());
    bool commits = !files.empty() || a.boolean("allow_empty");
    return json{
        {"text", commits ? "commits " + std::to_string(files.size()) + " files: " + list_text(files)
                         : std::string("nothing to commit")},
        {"committed", commits},
        {"files", strings_json(files)}};
  };
  e.apply = [](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    Head h = head(repo.get());
    Index idx;
    check(git_repository_index(idx.out(), repo.get()), "cannot read the index");
    if (a.boolean("all")) {
      stage_all(idx.get());
      check(git_index_write(idx.get()), "cannot write the index");
    }
    if (git_index_has_conflicts(idx.get())) throw EffectError("the index has unresolved conflicts");
    git_oid tree_id;
    check(git_index_write_tree(&tree_id, idx.get()), "cannot write the tree");
    Tree tree;
    check(git_tree_lookup(tree.out(), repo.get(), &tree_id), "cannot read the tree");
    Commit parent;
    Tree parent_tree;
    if (!h.unborn) {
      check(git_commit_lookup(parent.out(), repo.get(), &h.id), "cannot read HEAD");
      parent_tree = tree_of(parent.get());
    }
    auto files = diff_names(repo.get(), parent_tree.get(), tree.get());
    if (files.empty() && !a.boolean("allow_empty")) {
      json j{{"committed", false}, {"files", json::array()}};
      j["commit"] = h.unborn ? json(nullptr) : json(hex(h.id));
      j["short"] = h.unborn ? json(nullptr) : json(short_hex(h.id));
      return j;
    }
    Signature sig = signature(repo.get());
    const git_commit* parents[] = {parent.get()};
    git_oid id;
    check(git_commit_create(&id, repo.get(), "HEAD", sig.get(), sig.get(), nullptr,
                            a.str("message").c_str(), tree.get(), h.unborn ? 0 : 1, parents),
          "cannot commit");
    return json{{"committed", true},
                {"commit", hex(id)},
                {"short", short_hex(id)},
                {"files", strings_json(files)}};
  };
  e.planned = [](const Args&, const json& pv) {
    bool committed =
        pv.is_object() && pv.contains("committed") ? pv["committed"].get<bool>() : true;
    return json{{"committed", committed},
                {"commit", kZeroSha},
                {"short", kZeroSha.substr(0, 7)},
                {"files", pv_or(pv, "files", json::array())}};
  };
  r.add(std::move(e));
}

}  // namespace

void register_git(Registry& r) {
  add_commit(r);
  add_head(r);
  add_status(r);
  add_rev_parse(r);
  add_log(r);
  add_diff_names(r);
  add_tag(r);
  add_branch(r);
  git::register_tree_effects(r);
  git::register_history_effects(r);
  git::register_remote_effects(r);
}

}  // namespace rb
