// git.*: the repository as probes (head, status, rev_parse, log, diff_names) and the changes
// that add to it (commit, tag, branch). Work-tree changes are in git_tree.cc, history in
// git_history.cc, remotes in git_remote.cc. All in-process through libgit2: no `git` is ever
// spawned.
#include <algorithm>
#include <set>

#include "core/clock.h"
#include "core/error.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/git_repo.h"
#include "effects/util.h"

namespace rb {
namespace {
using namespace rb::git;

// The repository a probe reads and its prediction: p is null when no planned change touched it
// (the probe is then performed as usual).
struct Predicted {
  Repo repo;
  const json* p = nullptr;
};
Predicted predicted_for(EffectContext& ctx, const Args& a) {
  Predicted out;
  const json& all = ctx.predictions();
  if (!all.is_object() || !all.contains("git") || all["git"].empty()) return out;
  try {
    out.repo = open(a);
  } catch (const EffectError&) {
    return out;  // performed, it fails as it would
  }
  out.p = predicted_repo(ctx, out.repo.get());
  return out;
}

// "git.head after git.revert v2.0.1 in /w": what a probe cannot know.
json unknown_after(const std::string& probe, const json& pred, const json* pc = nullptr) {
  std::string by;
  if (pc && pc->is_object() && pc->contains("by") && (*pc)["by"].is_string())
    by = (*pc)["by"].get<std::string>();
  else if (pred.contains("unknown") && pred["unknown"].is_string())
    by = pred["unknown"].get<std::string>();
  else
    by = pred.value("after", std::string("a planned change"));
  return unknown_value(probe + " after " + by);
}

// The tags on a predicted commit: the world's, less those planned changes moved, plus theirs.
std::vector<std::string> predicted_tags(git_repository* repo, const json& pred, const json& pc) {
  std::set<std::string> out;
  if (is_known(pc))
    for (auto& t : tags_at(repo, oid_of(pc))) out.insert(t);
  for (const auto& [name, v] : pred["refs"].items()) {
    if (name.rfind("refs/tags/", 0) != 0) continue;
    if (v.is_object() && v.contains("id") && v["id"] == pc["id"])
      out.insert(name.substr(10));
    else
      out.erase(name.substr(10));
  }
  return {out.begin(), out.end()};
}

json log_entry(git_repository* repo, const git_oid& id) {
  Commit c;
  check(git_commit_lookup(c.out(), repo, &id), "cannot read commit " + hex(id));
  const git_signature* au = git_commit_author(c.get());
  return json{{"commit", hex(id)},
              {"short", short_hex(id)},
              {"summary", summary_of(c.get())},
              {"author", au->name ? au->name : ""},
              {"email", au->email ? au->email : ""},
              {"time", static_cast<int64_t>(git_commit_time(c.get()))},
              {"date", iso_utc(static_cast<int64_t>(git_commit_time(c.get())) * 1000)}};
}

// Up to `max` commits from `start`, newest first, leaving out those reachable from `hide`.
json log_walk(git_repository* repo, const git_oid& start, const git_oid* hide, int64_t max,
              json out = json::array()) {
  Revwalk walk;
  check(git_revwalk_new(walk.out(), repo), "cannot walk history");
  // Children before parents even within one second; by date otherwise, as `git log`.
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
  check(git_revwalk_push(walk.get(), &start), "cannot walk from " + hex(start));
  if (hide) check(git_revwalk_hide(walk.get(), hide), "cannot walk to " + hex(*hide));
  git_oid id;
  while (static_cast<int64_t>(out.size()) < max && git_revwalk_next(&id, walk.get()) == 0)
    out.push_back(log_entry(repo, id));
  return out;
}

void add_head(Registry& r) {
  Effect e;
  e.name = "git.head";
  e.summary = "Where HEAD is: its commit, branch (nil when detached) and the tag on it, if any";
  e.args = {repo_arg()};
  e.positional = {"repo"};
  e.returns =
      "{ commit, short, ref = \"refs/heads/main\" or nil, branch, detached, tag, tags, summary }";
  e.results = {{"commit", "string", "full sha"}, {"short", "string", "short sha"}, {"ref", "string", "\"refs/heads/main\", or nil when detached"}, {"branch", "string", "branch name, or nil"}, {"detached", "boolean", "whether HEAD is detached"}, {"tag", "string", "a tag at HEAD, or nil"}, {"tags", "list", "every tag at HEAD"}, {"summary", "string", "the commit's first line"}};
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
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    Predicted pr = predicted_for(ctx, a);
    if (!pr.p) return nullptr;
    const json& p = *pr.p;
    if (p.contains("unknown")) return unknown_after("git.head", p);
    const json& pc = p["head"];
    if (pc.is_null()) return nullptr;  // no commits: it fails as it would
    json j;
    if (is_known(pc)) {
      git_oid id = oid_of(pc);
      Commit c;
      check(git_commit_lookup(c.out(), pr.repo.get(), &id), "cannot read HEAD's commit");
      j = json{{"commit", hex(id)}, {"short", short_hex(id)}};
      j["summary"] = summary_of(c.get());
    } else {
      j = json{{"commit", unknown_after("git.head", p, &pc)},
               {"short", unknown_after("git.head", p, &pc)}};
      const json& made = pc.contains("made") ? pc["made"] : json::array();
      j["summary"] = made.is_array() && !made.empty() && made[0].contains("summary")
                         ? made[0]["summary"]
                         : unknown_after("git.head", p, &pc);
    }
    json summary = j["summary"];
    j.erase("summary");
    bool detached = !p["ref"].is_string();
    std::string ref = detached ? "" : p["ref"].get<std::string>();
    auto tags = predicted_tags(pr.repo.get(), p, pc);
    j["ref"] = detached ? json(nullptr) : json(ref);
    j["branch"] = detached ? json(nullptr) : json(ref.substr(ref.rfind("refs/heads/", 0) == 0 ? 11 : 0));
    j["detached"] = detached;
    j["tag"] = tags.empty() ? json(nullptr) : json(tags.front());
    j["tags"] = strings_json(tags);
    j["summary"] = summary;
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
  e.results = {{"clean", "boolean", "nothing modified, staged or untracked"}, {"tracked_clean", "boolean", "nothing modified or staged"}, {"modified", "list", "paths"}, {"staged", "list", "paths"}, {"untracked", "list", "paths"}, {"conflicted", "list", "paths"}};
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
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    Predicted pr = predicted_for(ctx, a);
    if (!pr.p) return nullptr;
    const json& p = *pr.p;
    if (p.contains("unknown")) return unknown_after("git.status", p);
    if (git_repository_is_bare(pr.repo.get())) return nullptr;
    Status s = status(pr.repo.get());
    json untracked = strings_json(predicted_untracked(&p, s.untracked));
    std::string wt = p.value("worktree", std::string("live"));
    json modified = strings_json(s.modified), staged = strings_json(s.staged),
         conflicted = strings_json(s.conflicted);
    json tracked_clean = !s.tracked_dirty();
    if (wt == "clean") {
      modified = staged = conflicted = json::array();
      tracked_clean = true;
    } else if (wt == "index_clean") {
      staged = conflicted = json::array();
      tracked_clean = modified.empty();
    } else if (wt == "dirty") {
      modified = staged = conflicted = unknown_after("git.status", p);
      tracked_clean = false;
    } else if (wt == "unknown") {
      modified = staged = conflicted = tracked_clean = unknown_after("git.status", p);
    }
    json clean = tracked_clean.is_boolean()
                     ? json(tracked_clean.get<bool>() && untracked.empty())
                     : unknown_after("git.status", p);
    return json{{"clean", clean},          {"tracked_clean", tracked_clean},
                {"modified", modified},    {"staged", staged},
                {"untracked", untracked},  {"conflicted", conflicted}};
  };
  e.planned = [](const Args&, const json&) {
    return json{
        {"clean", true},           {"tracked_clean", true},      {"modified", json::array()},
        {"staged", json::array()}, {"untracked", json::array()}, {"conflicted", json::array()}};
  };
  r.add(std::move(e));
}

// `rev` (the ref argument, or it with a predicted sha in place of its start) as rev_parse says.
std::string rev_parse(git_repository* repo, const Args& a, const std::string& rev) {
  Object o;
  int rc = git_revparse_single(o.out(), repo, rev.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
    throw EffectError("unknown ref '" + a.str("ref") + "' in " + a.str("repo"));
  check(rc, "cannot resolve '" + a.str("ref") + "'");
  Object c;
  // A tag means its commit (as `rev-parse v1^{commit}`); a tree or blob stays itself.
  if (git_object_peel(c.out(), o.get(), GIT_OBJECT_COMMIT) == 0)
    return hex(*git_object_id(c.get()));
  return hex(*git_object_id(o.get()));
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
    return rev_parse(repo.get(), a, a.str("ref"));
  };
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    Predicted pr = predicted_for(ctx, a);
    if (!pr.p) return nullptr;
    git_repository* repo = pr.repo.get();
    json pc = resolve_predicted_with(repo, pr.p, a.str("ref"), [&](const std::string& rev) {
      return json{{"id", rev_parse(repo, a, rev)}};
    });
    if (is_known(pc)) return pc["id"];
    return unknown_after("git.rev_parse", *pr.p, &pc);
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
    std::optional<git_oid> stop;
    if (!hide.empty()) {
      Commit c = resolve_commit(repo.get(), hide);
      stop = *git_commit_id(c.get());
    }
    return log_walk(repo.get(), *git_commit_id(start.get()), stop ? &*stop : nullptr,
                    a.integer("max"));
  };
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    Predicted pr = predicted_for(ctx, a);
    if (!pr.p) return nullptr;
    const json& p = *pr.p;
    git_repository* repo = pr.repo.get();
    std::string ref = a.str("ref"), hide;
    if (auto dots = ref.find(".."); dots != std::string::npos) {
      hide = ref.substr(0, dots);
      ref = ref.substr(dots + 2);
      if (ref.empty()) ref = "HEAD";
    }
    json start = resolve_predicted(repo, &p, ref);
    std::optional<git_oid> stop;
    if (!hide.empty()) {
      json h = resolve_predicted(repo, &p, hide);
      if (!is_known(h)) return unknown_after("git.log", p, &h);
      stop = oid_of(h);
    }
    int64_t max = a.integer("max");
    if (is_known(start)) return log_walk(repo, oid_of(start), stop ? &*stop : nullptr, max);
    // New commits a planned change makes: what they will say is known, their ids and times not.
    if (!start.contains("base") || !start.contains("made") || !start["made"].is_array())
      return unknown_after("git.log", p, &start);
    json out = json::array();
    json u = unknown_after("git.log", p, &start);
    for (const auto& m : start["made"]) {
      if (static_cast<int64_t>(out.size()) >= max) break;
      out.push_back(json{{"commit", u},
                         {"short", u},
                         {"summary", m.value("summary", std::string())},
                         {"author", m.value("author", std::string())},
                         {"email", m.value("email", std::string())},
                         {"time", u},
                         {"date", u}});
    }
    if (start["base"].is_string()) {
      json base{{"id", start["base"]}};
      out = log_walk(repo, oid_of(base), stop ? &*stop : nullptr, max, std::move(out));
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
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    Predicted pr = predicted_for(ctx, a);
    if (!pr.p) return nullptr;
    const json& p = *pr.p;
    git_repository* repo = pr.repo.get();
    if (p.contains("unknown")) return unknown_after("git.diff_names", p);
    if (world_is_predicted(repo, &p)) return nullptr;  // HEAD and the work tree are as they are
    json from = resolve_predicted(repo, &p, a.str("from")), to;
    if (a.boolean("worktree")) {
      if (git_repository_is_bare(repo)) return nullptr;
      if (p.value("worktree", std::string()) != "clean") return unknown_after("git.diff_names", p);
      to = p["head"];
    } else {
      to = resolve_predicted(repo, &p, a.str("to"));
    }
    if (is_known(from) && is_known(to)) {
      git_oid fid = oid_of(from), tid = oid_of(to);
      Commit fc, tc;
      check(git_commit_lookup(fc.out(), repo, &fid), "cannot read " + hex(fid));
      check(git_commit_lookup(tc.out(), repo, &tid), "cannot read " + hex(tid));
      Tree ft = tree_of(fc.get()), tt = tree_of(tc.get());
      return strings_json(diff_names(repo, ft.get(), tt.get()));
    }
    // From the commit planned commits sit on to the last of them: the paths they change.
    if (is_known(from) && to.is_object() && to.contains("files") && to["files"].is_array() &&
        to.contains("base") && to["base"] == from["id"])
      return to["files"];
    return unknown_after("git.diff_names", p, is_known(to) ? &from : &to);
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
  p.refused = p.previous && !a.boolean("force");
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
  json commit = pv.is_object() && pv.contains("commit") && is_unknown(pv["commit"])
                    ? pv["commit"]
                    : json(pv_str(pv, "commit", kZeroSha));
  return json{{"name", a.str("name")},
              {"ref", prefix + a.str("name")},
              {"commit", commit},
              {"short", commit.is_string() ? json(commit.get<std::string>().substr(0, 7)) : commit},
              {"previous", pv_or(pv, "previous", nullptr)}};
}

// The commit `full` names in the predicted world (null when it does not exist), and its target.
json predicted_ref(git_repository* repo, const json* pred, const std::string& full) {
  if (pred && pred->contains("refs") && pred->at("refs").contains(full))
    return pred->at("refs").at(full);
  auto at = ref_commit(repo, full);
  return at ? known_commit(*at) : json(nullptr);
}

// git.tag and git.branch: the result they would give and the sentence. An existing one (in the
// world or made by a planned change) without force fails as the live call would.
json ref_preview(EffectContext& ctx, const Args& a, const std::string& prefix,
                 const std::string& kind, const std::string& note = "") {
  Repo repo = sure([&] { return open(a); });
  const json* pred = predicted_repo(ctx, repo.get());
  std::string full = prefix + a.str("name");
  sure([&] { check_ref_name(full, a.str("name")); });
  json target = sure([&] { return resolve_predicted(repo.get(), pred, a.str("ref")); });
  json previous = predicted_ref(repo.get(), pred, full);
  if (!previous.is_null() && !a.boolean("force"))
    throw WouldFail(kind + " '" + a.str("name") + "' already exists at " +
                    pc_label(repo.get(), previous) +
                    (kind == "tag" ? " (force = true replaces it)" : " (force = true moves it)"));
  std::string text = kind + " " + a.str("name") + " → " + pc_label(repo.get(), target);
  if (!previous.is_null() && previous["id"] != target["id"])
    text += " (moves it from " + pc_label(repo.get(), previous) + ")";
  json j{{"name", a.str("name")}, {"ref", full}};
  if (is_known(target)) {
    j["commit"] = target["id"];
    j["short"] = target["id"].get<std::string>().substr(0, 7);
  } else {
    j["commit"] = j["short"] = unknown_value("the commit " + a.str("ref") + " names after " +
                                            target.value("by", std::string("a planned change")));
  }
  j["previous"] = is_known(previous) ? previous["id"] : json(nullptr);
  j["text"] = text + note;
  j["refused"] = false;
  json b = basis(repo.get(), target);
  b["previous"] = j["previous"];
  b.erase("dirty");
  j["basis"] = b;
  return j;
}

void ref_predict(EffectContext& ctx, const Args& a, const json& pv, const std::string& prefix,
                 const std::string& effect) {
  with_prediction(ctx, a, pv, effect + " " + a.str("name") + " in " + a.str("repo"),
                  [&](git_repository* repo, json& p) {
                    json target = resolve_predicted(repo, &p, a.str("ref"));
                    std::string full = prefix + a.str("name");
                    p["refs"][full] = target;
                    // A branch moved with force = true while HEAD is on it moves HEAD too.
                    if (p["ref"] == full) p["head"] = target;
                  });
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
  e.results = {{"name", "string", "the tag"}, {"ref", "string", "refs/tags/<name>"}, {"commit", "string", "sha tagged"}, {"short", "string", "short sha"}, {"annotated", "boolean", "whether annotated"}, {"previous", "string", "sha it replaced, or nil"}};
  e.describe = [](const Args& a) {
    return "tag " + a.str("ref") + " as " + a.str("name") + " in " + a.str("repo");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    return ref_preview(ctx, a, "refs/tags/", "tag", a.has("message") ? " (annotated)" : "");
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    ref_predict(ctx, a, pv, "refs/tags/", "git.tag");
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
  e.results = {{"name", "string", "the branch"}, {"ref", "string", "refs/heads/<name>"}, {"commit", "string", "sha"}, {"short", "string", "short sha"}, {"previous", "string", "sha it was at, or nil"}};
  e.describe = [](const Args& a) {
    return "create branch " + a.str("name") + " at " + a.str("ref") + " in " + a.str("repo");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    return ref_preview(ctx, a, "refs/heads/", "branch");
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    ref_predict(ctx, a, pv, "refs/heads/", "git.branch");
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

// A commit message's summary as libgit2 gives it: its first paragraph on one line, trimmed.
std::string message_summary(const std::string& msg) {
  size_t b = msg.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::string para = msg.substr(b, msg.find("\n\n", b) == std::string::npos
                                       ? std::string::npos
                                       : msg.find("\n\n", b) - b);
  std::string out;
  for (char c : para) {
    if (c == '\r') continue;
    out += c == '\n' ? ' ' : c;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  return out;
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
  e.results = {{"committed", "boolean", "whether a commit was made"}, {"commit", "string", "HEAD after"}, {"short", "string", "short sha"}, {"files", "list", "paths committed"}};
  e.describe = [](const Args& a) {
    return "commit \"" + a.str("message") + "\" in " + a.str("repo");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    const json* pred = predicted_repo(ctx, repo.get());
    Status st = status(repo.get());
    std::string wt = !pred ? "live" : pred->contains("unknown") ? "unknown"
                                    : pred->value("worktree", std::string("live"));
    bool all = a.boolean("all");
    if (!all && wt == "live" && !st.conflicted.empty())
      throw WouldFail("the index has unresolved conflicts");
    json b = basis(repo.get(), nullptr);
    if (wt == "unknown" || wt == "dirty")
      return json{{"text", "commits what the planned changes before it leave (known when it runs)"},
                  {"committed", true},
                  {"files", unknown_value("the files git.commit commits after " +
                                          pred->value("after", std::string("a planned change")))},
                  {"basis", b}};
    std::vector<std::string> files;
    if (wt == "live") files = all ? st.tracked_changes() : st.staged;
    if (wt == "index_clean" && all) files = st.modified;
    if (all) {
      auto u = predicted_untracked(pred, st.untracked);
      files.insert(files.end(), u.begin(), u.end());
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    bool commits = !files.empty() || a.boolean("allow_empty");
    return json{
        {"text", commits ? "commits " + std::to_string(files.size()) + " files: " + list_text(files)
                         : std::string("nothing to commit")},
        {"committed", commits},
        {"files", strings_json(files)},
        {"basis", b}};
  };
  e.predict = [](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    with_prediction(ctx, a, pv, "git.commit \"" + a.str("message") + "\" in " + a.str("repo"),
                    [&](git_repository* repo, json& p) {
                      if (pv.is_object() && pv.value("committed", true) == false) return;
                      Signature sig = signature(repo);
                      json made = json::array({json{{"summary", message_summary(a.str("message"))},
                                                    {"author", sig.get()->name},
                                                    {"email", sig.get()->email}}});
                      json files = pv_or(pv, "files", json::array());
                      json head = p["head"];
                      predict_head(p, new_commits(p, head, made, files,
                                                  p["after"].get<std::string>()));
                      if (a.boolean("all")) {
                        p["worktree"] = "clean";
                        p["untracked_gone"] = true;
                      } else if (p["worktree"] == "live") {
                        p["worktree"] = "index_clean";
                      }
                    });
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
