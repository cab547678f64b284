// git.revert and git.cherry_pick: new commits on HEAD. Each commit is merged in memory first; a
// conflict refuses the whole operation before the work tree or any ref is touched, so a refused
// revert leaves the tree exactly as it was. Previews run the same merges against an in-memory
// object store, so a dry run can say "would conflict" without writing to .git.
#include <git2/sys/mempack.h>

#include <optional>
#include <set>

#include "core/error.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/git_repo.h"
#include "effects/util.h"

namespace rb::git {
namespace {

// "abc1234", "v1.0.0" or "A..B" (B defaults to HEAD) to commits, in the order they are applied:
// newest first for a revert, oldest first for a cherry-pick.
// With a prediction, the ends are resolved in the predicted world; nullopt when one of them is a
// commit a planned change makes (not known before it runs).
std::optional<std::vector<git_oid>> commits_of(git_repository* repo, const std::string& spec,
                                               bool newest_first, const json* pred = nullptr) {
  auto dots = spec.find("..");
  if (dots == std::string::npos) {
    json c = resolve_predicted(repo, pred, spec);
    if (!is_known(c)) return std::nullopt;
    return std::vector<git_oid>{oid_of(c)};
  }
  std::string from = spec.substr(0, dots), to = spec.substr(dots + 2);
  if (to.empty()) to = "HEAD";
  json fj = resolve_predicted(repo, pred, from), tj = resolve_predicted(repo, pred, to);
  if (!is_known(fj) || !is_known(tj)) return std::nullopt;
  Commit fc = resolve_commit(repo, fj["id"].get<std::string>()),
         tc = resolve_commit(repo, tj["id"].get<std::string>());
  Revwalk walk;
  check(git_revwalk_new(walk.out(), repo), "cannot walk history");
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | (newest_first ? 0 : GIT_SORT_REVERSE));
  check(git_revwalk_push(walk.get(), git_commit_id(tc.get())), "cannot walk from " + to);
  check(git_revwalk_hide(walk.get(), git_commit_id(fc.get())), "cannot walk to " + from);
  std::vector<git_oid> out;
  git_oid id;
  while (git_revwalk_next(&id, walk.get()) == 0) out.push_back(id);
  if (out.empty()) throw EffectError("'" + spec + "' names no commits");
  return std::optional<std::vector<git_oid>>(std::move(out));
}

std::vector<std::string> conflicts_in(git_index* idx) {
  std::set<std::string> paths;
  Handle<git_index_conflict_iterator, git_index_conflict_iterator_free> it;
  if (git_index_conflict_iterator_new(it.out(), idx) < 0) return {};
  const git_index_entry *anc, *ours, *theirs;
  while (git_index_conflict_next(&anc, &ours, &theirs, it.get()) == 0) {
    const git_index_entry* e = ours ? ours : theirs ? theirs : anc;
    if (e) paths.insert(e->path);
  }
  return {paths.begin(), paths.end()};
}

struct Made {
  git_oid from, made;
  std::string summary, message_summary, author, email;
};

struct Replay {
  git_oid start{}, final{};
  std::vector<Made> made;
  std::vector<std::string> skipped;  // already undone/applied: the merge changed nothing
};

// Applies the commits one by one on top of HEAD, as new commits that no ref points at yet.
Replay replay(git_repository* repo, const std::vector<git_oid>& commits, bool revert,
              unsigned mainline, const git_oid* start = nullptr) {
  const char* verb = revert ? "reverting" : "cherry-picking";
  Commit current;
  if (start)
    check(git_commit_lookup(current.out(), repo, start), "cannot read " + hex(*start));
  else
    current = head_commit(repo);
  Replay r;
  r.start = *git_commit_id(current.get());
  Signature committer = signature(repo);
  for (const auto& id : commits) {
    Commit pick;
    check(git_commit_lookup(pick.out(), repo, &id), "cannot read commit " + hex(id));
    std::string what = short_hex(id) + " \"" + summary_of(pick.get()) + "\"";
    Index idx;
    git_merge_options mo = GIT_MERGE_OPTIONS_INIT;
    int rc = revert
                 ? git_revert_commit(idx.out(), repo, pick.get(), current.get(), mainline, &mo)
                 : git_cherrypick_commit(idx.out(), repo, pick.get(), current.get(), mainline, &mo);
    check(rc, std::string(verb) + " " + what);
    if (git_index_has_conflicts(idx.get())) {
      auto paths = conflicts_in(idx.get());
      throw EffectError(std::string(verb) + " " + what + " conflicts in " + list_text(paths) +
                            "; nothing was changed",
                        json{{"conflicts", strings_json(paths)}, {"commit", hex(id)}});
    }
    git_oid tree_id;
    check(git_index_write_tree_to(&tree_id, idx.get(), repo), "cannot write the merged tree");
    if (git_oid_equal(&tree_id, git_commit_tree_id(current.get()))) {
      r.skipped.push_back(hex(id));
      continue;
    }
    Tree tree;
    check(git_tree_lookup(tree.out(), repo, &tree_id), "cannot read the merged tree");
    std::string msg;
    if (revert) {
      msg = "Revert \"" + summary_of(pick.get()) + "\"\n\nThis reverts commit " + hex(id) + ".\n";
    } else {
      std::string orig = git_commit_message(pick.get());
      while (!orig.empty() && orig.back() == '\n') orig.pop_back();
      msg = orig + "\n\n(cherry picked from commit " + hex(id) + ")\n";
    }
    const git_signature* author = revert ? committer.get() : git_commit_author(pick.get());
    const git_commit* parents[] = {current.get()};
    git_oid made;
    check(git_commit_create(&made, repo, nullptr, author, committer.get(), nullptr, msg.c_str(),
                            tree.get(), 1, parents),
          "cannot commit " + std::string(revert ? "the revert of " : "the cherry-pick of ") + what);
    r.made.push_back({id, made, summary_of(pick.get()), "", author->name ? author->name : "",
                      author->email ? author->email : ""});
    {
      Commit mc;
      if (git_commit_lookup(mc.out(), repo, &made) == 0) r.made.back().message_summary = summary_of(mc.get());
    }
    Commit next;
    check(git_commit_lookup(next.out(), repo, &made), "cannot read the new commit");
    current = std::move(next);
  }
  r.final = *git_commit_id(current.get());
  return r;
}

std::vector<std::string> changed_between(git_repository* repo, const git_oid& a, const git_oid& b) {
  Commit ca, cb;
  check(git_commit_lookup(ca.out(), repo, &a), "cannot read " + hex(a));
  check(git_commit_lookup(cb.out(), repo, &b), "cannot read " + hex(b));
  Tree ta = tree_of(ca.get()), tb = tree_of(cb.get());
  return diff_names(repo, ta.get(), tb.get());
}

// Whether `spec` names the same commits after the effect ran (a sha or a tag, not "HEAD").
bool stable_spec(git_repository* repo, const std::string& spec) {
  if (spec.find("..") != std::string::npos) return false;
  git_oid id;
  if (spec.size() >= 7 && git_oid_fromstrn(&id, spec.c_str(), spec.size()) == 0) return true;
  Reference ref;
  return git_reference_dwim(ref.out(), repo, spec.c_str()) == 0 &&
         std::string(git_reference_name(ref.get())).rfind("refs/tags/", 0) == 0;
}

void add_history_effect(Registry& r, bool revert) {
  std::string key = revert ? "reverted" : "picked";
  Effect e;
  e.name = revert ? "git.revert" : "git.cherry_pick";
  e.summary =
      revert
          ? "Commit the undoing of a commit (or a range A..B, newest first); refused on conflict, "
            "leaving the tree untouched"
          : "Apply a commit (or a range A..B, oldest first) on HEAD as new commits; refused on "
            "conflict, leaving the tree untouched";
  e.kind = Kind::Change;
  e.args = {
      repo_arg(), req("commit", ArgType::String, "a commit, or a range \"A..B\""),
      opt("mainline", ArgType::Int, "for a merge commit: the parent (1-based) to diff against", 0)};
  e.returns = "{ commit = new HEAD, short, " + key + " = {shas}, commits = { { commit, " +
              (revert ? "reverts" : "picks") + ", summary } }, files, skipped = {shas already " +
              (revert ? "undone" : "applied") + "} }";
  e.results = revert ? std::vector<ResultField>{{"commit", "string", "new HEAD"}, {"short", "string", "short sha"}, {"reverted", "list", "shas reverted"}, {"commits", "list", "{ commit, reverts, summary } of each commit made"}, {"files", "list", "paths changed"}, {"skipped", "list", "shas already undone"}, {"conflicts", "list", "on failure: conflicting paths"}, {"uncommitted", "list", "on failure: the changes that refused it"}}
                     : std::vector<ResultField>{{"commit", "string", "new HEAD"}, {"short", "string", "short sha"}, {"picked", "list", "shas picked"}, {"commits", "list", "{ commit, picks, summary } of each commit made"}, {"files", "list", "paths changed"}, {"skipped", "list", "shas already applied"}, {"conflicts", "list", "on failure: conflicting paths"}, {"uncommitted", "list", "on failure: the changes that refused it"}};
  e.describe = [revert](const Args& a) {
    return std::string(revert ? "revert " : "cherry-pick ") + a.str("commit") + " in " +
           a.str("repo");
  };
  e.preview = [revert, key](EffectContext& ctx, const Args& a) -> json {
    Repo repo = sure([&] { return open(a); });
    sure([&] { require_workdir(repo.get(), a.str("repo")); });
    const json* pred = predicted_repo(ctx, repo.get());
    std::string name = revert ? "git.revert" : "git.cherry_pick";
    auto dirty = predicted_dirty(repo.get(), pred);
    if (dirty && !dirty->empty())
      throw WouldFail("uncommitted changes to " + list_text(*dirty) + "; commit or stash them first",
                      json{{"uncommitted", strings_json(*dirty)}});
    json start;
    if (pred) {
      start = pred->at("head");
      if (start.is_null()) throw WouldFail(where(repo.get()) + " has no commits yet");
    } else {
      Commit hc = sure([&] { return head_commit(repo.get()); });
      start = known_commit(*git_commit_id(hc.get()));
    }
    json b = basis(repo.get(), nullptr);
    auto commits = sure([&] { return commits_of(repo.get(), a.str("commit"), revert, pred); });
    std::string after = pred ? pred->value("after", std::string()) : std::string();
    if (!commits || !is_known(start)) {
      // On top of commits a planned change makes: the merge can be tried only when they exist.
      json u = unknown_value("what " + name + " " + a.str("commit") + " does after " + after);
      return json{{"text", std::string(revert ? "reverts " : "applies ") + a.str("commit") +
                               " on the commits " + after + " makes (checked when it runs)"},
                  {key, u},
                  {"files", u},
                  {"skipped", u},
                  {"refused", false},
                  {"basis", b}};
    }
    // Every object the trial merge writes goes to memory, never to .git/objects.
    Odb odb;
    check(git_repository_odb(odb.out(), repo.get()), "cannot open the object store");
    git_odb_backend* mem = nullptr;
    check(git_mempack_new(&mem), "cannot create an in-memory object store");
    check(git_odb_add_backend(odb.get(), mem, 1000), "cannot add an in-memory object store");
    std::vector<std::string> shas, names;
    for (const auto& id : *commits) {
      Commit c;
      check(git_commit_lookup(c.out(), repo.get(), &id), "cannot read " + hex(id));
      shas.push_back(hex(id));
      names.push_back(short_hex(id) + " \"" + summary_of(c.get()) + "\"");
    }
    std::string text = std::string(revert ? "reverts " : "applies ") +
                       (commits->size() == 1 ? "" : std::to_string(commits->size()) + " commits: ") +
                       list_text(names, 10);
    json j{{key, strings_json(shas)}};
    git_oid sid = oid_of(start);
    // A conflict refuses the live call with this very message.
    Replay rp = sure([&] {
      return replay(repo.get(), *commits, revert, static_cast<unsigned>(a.integer("mainline")),
                    &sid);
    });
    auto files = changed_between(repo.get(), rp.start, rp.final);
    text += " as " + std::to_string(rp.made.size()) + " new commit" +
            (rp.made.size() == 1 ? "" : "s") + ", " + std::to_string(files.size()) +
            (files.size() == 1 ? " file changes" : " files change");
    if (!rp.skipped.empty())
      text += "; " + std::to_string(rp.skipped.size()) + " already " +
              (revert ? "undone" : "applied");
    json made = json::array();
    for (auto it = rp.made.rbegin(); it != rp.made.rend(); ++it)
      made.push_back(
          json{{"summary", it->message_summary}, {"author", it->author}, {"email", it->email}});
    j["files"] = strings_json(files);
    j["skipped"] = strings_json(rp.skipped);
    j["new_commits"] = made;
    j["refused"] = false;
    j["text"] = text;
    b["commits"] = strings_json(shas);
    j["basis"] = b;
    return j;
  };
  e.predict = [revert](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    std::string after = std::string(revert ? "git.revert " : "git.cherry_pick ") +
                        a.str("commit") + " in " + a.str("repo");
    with_prediction(ctx, a, pv, after, [&](git_repository*, json& p) {
      json head = p["head"];
      if (pv.contains("new_commits") && pv["new_commits"].is_array()) {
        if (pv["new_commits"].empty()) return;  // all already done: HEAD stays
        predict_head(p, new_commits(p, head, pv["new_commits"], pv["files"], after));
      } else {
        json unknown_head{{"id", unknown_value("commits made by " + after)},
                          {"by", after},
                          {"base", nullptr},
                          {"made", json::array()}};
        predict_head(p, unknown_head);
      }
      p["worktree"] = "clean";
    });
    taint_files(ctx, after);
  };
  e.apply = [revert, key](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    require_workdir(repo.get(), a.str("repo"));
    auto dirty = status(repo.get(), false, false).tracked_changes();
    if (!dirty.empty())
      throw EffectError(
          "uncommitted changes to " + list_text(dirty) + "; commit or stash them first",
          json{{"uncommitted", strings_json(dirty)}});
    auto commits = *commits_of(repo.get(), a.str("commit"), revert);
    Replay rp = replay(repo.get(), commits, revert, static_cast<unsigned>(a.integer("mainline")));
    if (!git_oid_equal(&rp.final, &rp.start)) {
      Commit fc;
      check(git_commit_lookup(fc.out(), repo.get(), &rp.final), "cannot read the new commit");
      Tree ft = tree_of(fc.get());
      safe_checkout(repo.get(), ft.get());
      move_head(
          repo.get(), rp.final, rp.start,
          std::string(revert ? "revert: " : "cherry-pick: ") + a.str("commit") + " (runbook)");
    }
    json done = json::array(), list = json::array();
    for (const auto& m : rp.made) {
      done.push_back(hex(m.from));
      list.push_back(json{{"commit", hex(m.made)},
                          {revert ? "reverts" : "picks", hex(m.from)},
                          {"summary", m.summary}});
    }
    return json{{"commit", hex(rp.final)},
                {"short", short_hex(rp.final)},
                {key, done},
                {"commits", list},
                {"files", strings_json(changed_between(repo.get(), rp.start, rp.final))},
                {"skipped", strings_json(rp.skipped)}};
  };
  e.planned = [key](const Args&, const json& pv) {
    return json{{"commit", kZeroSha},
                {"short", kZeroSha.substr(0, 7)},
                {key, pv_or(pv, key, json::array())},
                {"commits", json::array()},
                {"files", pv_or(pv, "files", json::array())},
                {"skipped", pv_or(pv, "skipped", json::array())}};
  };
  e.verify = [revert](EffectContext&, const Args& a) -> json {
    Repo repo = open(a);
    if (!stable_spec(repo.get(), a.str("commit"))) return nullptr;
    Commit c = resolve_commit(repo.get(), a.str("commit"));
    std::string mark = revert ? "This reverts commit " + hex(*git_commit_id(c.get())) + "."
                              : "(cherry picked from commit " + hex(*git_commit_id(c.get())) + ")";
    // The commit this effect made is HEAD, or close below it if later steps committed.
    Commit cur = head_commit(repo.get());
    for (int i = 0; i < 20 && cur; ++i) {
      if (std::string(git_commit_message(cur.get())).find(mark) != std::string::npos) return true;
      Commit parent;
      if (git_commit_parent(parent.out(), cur.get(), 0) < 0) break;
      cur = std::move(parent);
    }
    return false;
  };
  r.add(std::move(e));
}

}  // namespace

void register_history_effects(Registry& r) {
  add_history_effect(r, true);
  add_history_effect(r, false);
}

}  // namespace rb::git
