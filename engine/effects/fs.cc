// fs.*: files and directories. Nothing here destroys data: remove, restore and overwriting
// writes move what they replace into the run's artifact directory.
#include <glob.h>
#include <sys/stat.h>

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "core/clock.h"
#include "core/hash.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/fs_world.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

// Where a replaced or removed path goes: <artifacts>/<kind>/<absolute path>.
std::string artifact_for(EffectContext& ctx, const std::string& kind, const std::string& path) {
  std::string rel = abs_path(path);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  return os::unique_path(ctx.artifact_dir() + "/" + kind + "/" + rel);
}

// Moves `path` (if it exists) into the artifacts; returns where it went, or null.
json set_aside(EffectContext& ctx, const std::string& kind, const std::string& path) {
  if (!exists(path)) return nullptr;
  std::string dest = artifact_for(ctx, kind, path);
  try {
    os::move_path(path, dest);
  } catch (const std::exception& e) {
    throw EffectError(e.what());
  }
  return dest;
}

std::string describe_tree(const std::string& p) {
  std::error_code ec;
  if (!exists(p)) return "missing";
  if (stdfs::is_directory(p, ec)) {
    size_t files = 0;
    for (auto it = stdfs::recursive_directory_iterator(p, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec)) ++files;
    return "directory, " + std::to_string(files) + " files, " + size_text(os::path_size(p));
  }
  return size_text(os::path_size(p));
}

template <typename F>
json guarded(F&& f) {
  try {
    return f();
  } catch (const EffectError&) {
    throw;
  } catch (const std::exception& e) {
    throw EffectError(e.what());
  }
}

// Where fs.backup puts its copy. private = true: inside the run's artifacts (0700), under the
// source's absolute path, so a copy of a file full of secrets (an env file) never lands in a work
// tree where the next `git add -A` takes it. `artifacts` is the run's artifact directory ("" when
// not known: then beside the source, and the effect refuses before it copies).
std::string backup_name(const Args& a, const std::string& artifacts = "") {
  std::string path = abs_path(a.str("path"));
  stdfs::path p(path);
  std::string dir = a.has("dir") ? abs_path(a.str("dir")) : p.parent_path().string();
  if (a.boolean("private") && !artifacts.empty()) {
    std::string rel = p.parent_path().string();
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    dir = artifacts + "/backups" + (rel.empty() ? "" : "/" + rel);
  }
  return dir + "/" + stamped_backup_name(p.filename().string());
}

// Makes every file of a private backup 0600 and its directories 0700, whatever the umask.
void make_private(const std::string& path) {
  std::error_code ec;
  if (stdfs::is_directory(path, ec)) {
    stdfs::permissions(path, stdfs::perms::owner_all, stdfs::perm_options::replace, ec);
    for (auto it = stdfs::recursive_directory_iterator(path, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code e2;
      if (it->is_symlink(e2)) continue;
      bool dir = it->is_directory(e2);
      stdfs::permissions(it->path(),
                         dir ? stdfs::perms::owner_all
                             : stdfs::perms::owner_read | stdfs::perms::owner_write,
                         stdfs::perm_options::replace, e2);
    }
  } else {
    stdfs::permissions(path, stdfs::perms::owner_read | stdfs::perms::owner_write,
                       stdfs::perm_options::replace, ec);
  }
}

std::vector<std::string> glob_paths(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  int rc = ::glob(pattern.c_str(), GLOB_NOSORT | GLOB_BRACE | GLOB_TILDE, nullptr, &g);
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

// Content of a file or tree (names, types and file contents), to tell whether a copy finished.
std::string tree_digest(const std::string& p) {
  std::error_code ec;
  if (!exists(p)) return "";
  if (!stdfs::is_directory(stdfs::symlink_status(p, ec))) {
    if (stdfs::is_symlink(stdfs::symlink_status(p, ec))) return "L " + stdfs::read_symlink(p, ec).string();
    return "F " + sha256_file(p);
  }
  std::vector<std::string> lines;
  for (auto it = stdfs::recursive_directory_iterator(p, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    std::string rel = stdfs::relative(it->path(), p, ec).generic_string();
    if (it->is_symlink(ec))
      lines.push_back("L " + rel + " " + stdfs::read_symlink(it->path(), ec).string());
    else if (it->is_directory(ec))
      lines.push_back("D " + rel);
    else
      lines.push_back("F " + rel + " " + sha256_file(it->path().string()));
  }
  std::sort(lines.begin(), lines.end());
  return "D " + sha256_hex(join(lines, "\n"));
}

// ---- Dry-run predictions -------------------------------------------------------------------
// ctx.predictions()["fs"] = { seq, content_bytes, dirs: { dir: seq }, paths: { abs path: entry } }
// An entry says what a planned change leaves at its path:
//   { exists, type = "file"|"directory"|"link"|"other"|null (unknown), size, mode, sha256,
//     content (when known and small) or live = a live file with that content (a copy's source),
//     target (links), whole (a directory whose children are all the entries under it),
//     partial (some of those children are not known), by = the change's describe, seq }
// The nearest entry at or above a path decides; without one, the path is as it is now (live).
// `dirs` holds when a planned change last created or removed a name in a directory (its mtime).
constexpr size_t kKeepContent = 1 << 20;       // content kept for fs.read, per file
constexpr size_t kContentBudget = 64 << 20;    // all content kept, per run
constexpr size_t kTreeEntries = 10000;         // entries of one copied tree that are predicted
constexpr size_t kDigestEntries = 100000;      // entries of a tree digested for a basis
constexpr int kTreeDepth = 64;

class World {
 public:
  explicit World(EffectContext& ctx) : root_(ctx.predictions()["fs"]) {
    if (!root_.is_object()) root_ = json::object();
    if (!root_.contains("paths")) root_["paths"] = json::object();
    if (!root_.contains("dirs")) root_["dirs"] = json::object();
    auto& o = obj();
    for (size_t i = 0; i < o.size(); ++i) idx_.emplace((o.begin() + i)->first, i);
  }
  bool empty() const { return idx_.empty(); }
  const json* find(const std::string& p) const {
    auto it = idx_.find(p);
    return it == idx_.end() ? nullptr : &(obj().begin() + it->second)->second;
  }
  void set(const std::string& p, json e) {
    touch_parent(p);
    auto it = idx_.find(p);
    if (it != idx_.end()) {
      (obj().begin() + it->second)->second = std::move(e);
      return;
    }
    idx_.emplace(p, obj().size());
    obj().emplace_back(p, std::move(e));
  }
  // Removes the entries strictly under `p`.
  void erase_under(const std::string& p) {
    std::string prefix = p == "/" ? "/" : p + "/";
    auto it = idx_.lower_bound(prefix);
    if (it == idx_.end() || it->first.compare(0, prefix.size(), prefix) != 0) return;
    json::object_t kept;
    for (auto& [k, v] : obj())
      if (k.compare(0, prefix.size(), prefix) != 0) kept.emplace_back(k, std::move(v));
    json fresh = json::object();
    fresh.get_ref<json::object_t&>() = std::move(kept);
    root_["paths"] = std::move(fresh);
    idx_.clear();
    auto& o = obj();
    for (size_t i = 0; i < o.size(); ++i) idx_.emplace((o.begin() + i)->first, i);
  }
  // Names of the entries directly under `dir`.
  std::vector<std::string> child_names(const std::string& dir) const {
    std::string prefix = dir == "/" ? "/" : dir + "/";
    std::vector<std::string> out;
    for (auto it = idx_.lower_bound(prefix);
         it != idx_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      if (it->first.find('/', prefix.size()) == std::string::npos)
        out.push_back(it->first.substr(prefix.size()));
    return out;
  }
  // Whether any entry is at or under `p`.
  bool any_at_or_under(const std::string& p) const {
    if (idx_.count(p)) return true;
    std::string prefix = p == "/" ? "/" : p + "/";
    auto it = idx_.lower_bound(prefix);
    return it != idx_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& [k, i] : idx_) out.push_back(k);
    return out;
  }
  int64_t next_seq() {
    int64_t s = root_.value("seq", int64_t{0}) + 1;
    root_["seq"] = s;
    return s;
  }
  int64_t seq() const { return root_.value("seq", int64_t{0}); }
  int64_t dir_seq(const std::string& dir) const {
    const json& d = root_["dirs"];
    auto it = d.find(dir);
    return it == d.end() ? 0 : it->get<int64_t>();
  }
  // Content kept for fs.read, within the run's budget.
  bool keep_content(size_t n) {
    size_t used = root_.value("content_bytes", size_t{0});
    if (n > kKeepContent || used + n > kContentBudget) return false;
    root_["content_bytes"] = used + n;
    return true;
  }

 private:
  json::object_t& obj() { return root_["paths"].get_ref<json::object_t&>(); }
  const json::object_t& obj() const { return root_["paths"].get_ref<const json::object_t&>(); }
  void touch_parent(const std::string& p) {
    std::string parent = stdfs::path(p).parent_path().string();
    if (!parent.empty() && parent != p) root_["dirs"][parent] = seq();
  }
  json& root_;
  std::map<std::string, size_t> idx_;
};

// What is at a path in the predicted world.
struct Node {
  enum Src { Live, Predicted, Unknown } src = Live;
  bool exists = false;
  std::string type;  // file | directory | link | other; "" = not known
  json size = nullptr, mode = nullptr;
  std::string sha;  // a file's, when known
  const json* entry = nullptr;
  std::string by;   // the planned change that decides it
  std::string target;
  int64_t seq = 0;
};

std::string parent_of(const std::string& abs) {
  std::string p = stdfs::path(abs).parent_path().string();
  return p.empty() ? "/" : p;
}

Node live_node(const std::string& abs) {
  Node n;
  struct stat st;
  if (::lstat(abs.c_str(), &st) != 0) return n;
  n.exists = true;
  n.type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : S_ISLNK(st.st_mode) ? "link" : "other";
  n.size = static_cast<int64_t>(st.st_size);
  n.mode = static_cast<int64_t>(st.st_mode & 07777);
  if (n.type == "link") {
    std::error_code ec;
    n.target = stdfs::read_symlink(abs, ec).string();
  }
  return n;
}

Node lookup(const World& w, const std::string& abs) {
  Node n;
  if (const json* e = w.find(abs)) {
    n.src = Node::Predicted;
    n.entry = e;
    n.exists = e->value("exists", false);
    json t = e->value("type", json(nullptr));
    n.type = t.is_string() ? t.get<std::string>() : "";
    n.size = e->value("size", json(nullptr));
    n.mode = e->value("mode", json(nullptr));
    n.sha = e->value("sha256", "");
    n.target = e->value("target", "");
    n.by = e->value("by", "");
    n.seq = e->value("seq", int64_t{0});
    return n;
  }
  if (w.empty()) return live_node(abs);
  std::string p = abs;
  for (int depth = 0; depth < 4096 && p != "/"; ++depth) {
    p = parent_of(p);
    const json* e = w.find(p);
    if (!e) continue;
    n.by = e->value("by", "");
    if (!e->value("exists", false) || e->value("type", json(nullptr)) != "directory" || e->value("whole", false)) {
      n.src = e->value("partial", false) && e->value("exists", false) ? Node::Unknown : Node::Predicted;
      return n;
    }
    break;
  }
  return live_node(abs);
}

// The entries of a directory in the predicted world, each with its node; at most `max`.
std::vector<std::pair<std::string, Node>> children(const World& w, const std::string& dir,
                                                   const Node& d, size_t max) {
  std::set<std::string> names;
  bool whole = d.src == Node::Predicted && d.entry && d.entry->value("whole", false);
  if (!whole) {
    std::error_code ec;
    for (auto it = stdfs::directory_iterator(dir, ec);
         !ec && it != stdfs::directory_iterator() && names.size() <= max; it.increment(ec))
      names.insert(it->path().filename().string());
  }
  for (auto& nm : w.child_names(dir)) names.insert(nm);
  std::vector<std::pair<std::string, Node>> out;
  std::string base = dir == "/" ? "" : dir;
  for (const auto& nm : names) {
    if (out.size() >= max) break;
    Node n = lookup(w, base + "/" + nm);
    if (n.exists || n.src == Node::Unknown) out.emplace_back(nm, std::move(n));
  }
  return out;
}

constexpr int64_t kHashMax = 256 << 20;  // larger files are not hashed at plan time

bool large(const Node& n) { return n.size.is_number() && n.size.get<int64_t>() > kHashMax; }

// A file's sha256, or for one too large to hash while planning, "size:<bytes>".
std::string file_sha(const std::string& abs, const Node& n) {
  if (!n.sha.empty()) return n.sha;
  if (large(n)) return "size:" + std::to_string(n.size.get<int64_t>());
  return sha256_file(abs);
}

// The digest of what is at a path: a file's sha256, "D <sha256 of the tree's listing>",
// "L <target>", "absent"; an unknown where the prediction does not tell.
json digest(const World& w, const std::string& abs, bool* other = nullptr) {
  Node top = lookup(w, abs);
  if (top.src == Node::Unknown) return unknown_value("the content of " + abs + " after " + top.by);
  if (!top.exists) return "absent";
  if (top.type.empty()) return unknown_value("the content of " + abs + " after " + top.by);
  if (top.type == "link") return "L " + top.target;
  if (top.type == "other") {
    if (other) *other = true;
    return "other";
  }
  if (top.type == "file") return file_sha(abs, top);
  std::vector<std::string> lines;
  std::vector<std::tuple<std::string, std::string, Node, int>> todo{{abs, "", top, 0}};
  size_t seen = 0;
  while (!todo.empty()) {
    auto [path, rel, node, depth] = std::move(todo.back());
    todo.pop_back();
    if (node.entry && node.entry->value("partial", false))
      return unknown_value("the content of " + abs + " after " + node.by);
    for (auto& [name, child] : children(w, path, node, kDigestEntries + 1)) {
      if (++seen > kDigestEntries) return "not digested: more than " + std::to_string(kDigestEntries) + " entries";
      std::string crel = rel.empty() ? name : rel + "/" + name;
      std::string cpath = path + "/" + name;
      if (child.src == Node::Unknown || child.type.empty())
        return unknown_value("the content of " + abs + " after " + child.by);
      if (child.type == "directory") {
        lines.push_back("D " + crel);
        if (depth + 1 < kTreeDepth) todo.emplace_back(cpath, crel, child, depth + 1);
      } else if (child.type == "link") {
        lines.push_back("L " + crel + " " + child.target);
      } else if (child.type == "file") {
        lines.push_back("F " + crel + " " + file_sha(cpath, child));
      } else {
        if (other) *other = true;
        lines.push_back("O " + crel);
      }
    }
  }
  std::sort(lines.begin(), lines.end());
  return "D " + sha256_hex(join(lines, "\n"));
}

// The entry a copy of `src` (a file or link) makes.
json copied_entry(World& w, const std::string& src, const Node& n) {
  json e{{"exists", true}, {"type", n.type}, {"size", n.size}, {"mode", n.mode}};
  if (n.type == "link") {
    e["target"] = n.target;
    return e;
  }
  if (!n.sha.empty() || !large(n)) e["sha256"] = file_sha(src, n);
  if (n.entry) {
    if (n.entry->contains("content")) {
      size_t sz = (*n.entry)["content"].get_ref<const std::string&>().size();
      if (w.keep_content(sz)) e["content"] = (*n.entry)["content"];
    } else if (n.entry->contains("live")) {
      e["live"] = (*n.entry)["live"];
    }
  } else {
    e["live"] = src;
  }
  return e;
}

// The predicted entries a copy of `src` to `dst` makes (dst first), or WouldFail for what
// the copy cannot copy.
std::vector<std::pair<std::string, json>> copy_entries(World& w, const std::string& src,
                                                       const Node& top, const std::string& dst) {
  std::vector<std::pair<std::string, json>> out;
  if (top.type == "other") throw WouldFail("cannot copy " + src + ": not a file, directory or link");
  if (top.type != "directory") {
    out.emplace_back(dst, copied_entry(w, src, top));
    return out;
  }
  std::vector<std::tuple<std::string, std::string, Node, int>> todo{{src, dst, top, 0}};
  while (!todo.empty()) {
    auto [from, to, node, depth] = std::move(todo.back());
    todo.pop_back();
    json d{{"exists", true}, {"type", "directory"}, {"size", nullptr}, {"mode", node.mode}, {"whole", true}};
    bool partial = node.entry && node.entry->value("partial", false);
    size_t room = kTreeEntries > out.size() ? kTreeEntries - out.size() : 0;
    auto kids = partial || depth >= kTreeDepth ? decltype(children(w, from, node, 0)){}
                                               : children(w, from, node, room + 1);
    if (partial || depth >= kTreeDepth || kids.size() > room) partial = true;
    if (partial) d["partial"] = true;
    out.emplace_back(to, std::move(d));
    for (auto& [name, child] : kids) {
      if (out.size() >= kTreeEntries) break;
      std::string cf = from + "/" + name, ct = to + "/" + name;
      if (child.src == Node::Unknown || child.type.empty()) {
        out.emplace_back(ct, json{{"exists", true}, {"type", nullptr}, {"whole", true}, {"partial", true}});
      } else if (child.type == "directory") {
        todo.emplace_back(cf, ct, child, depth + 1);
      } else if (child.type == "other") {
        throw WouldFail("cannot copy " + cf + ": not a file, directory or link");
      } else {
        out.emplace_back(ct, copied_entry(w, cf, child));
      }
    }
  }
  return out;
}

// Total size of the files at or under a path in the predicted world; -1 if not known.
int64_t tree_size(const World& w, const std::string& abs, const Node& top) {
  if (top.type == "file" || top.type == "link") return top.size.is_number() ? top.size.get<int64_t>() : -1;
  if (top.src == Node::Live && w.empty()) return static_cast<int64_t>(os::path_size(abs));
  int64_t total = 0;
  size_t seen = 0;
  std::vector<std::tuple<std::string, Node, int>> todo{{abs, top, 0}};
  while (!todo.empty()) {
    auto [path, node, depth] = std::move(todo.back());
    todo.pop_back();
    if (node.entry && node.entry->value("partial", false)) return -1;
    for (auto& [name, child] : children(w, path, node, kDigestEntries + 1)) {
      if (++seen > kDigestEntries || child.src == Node::Unknown || child.type.empty()) return -1;
      if (child.type == "directory") {
        if (depth + 1 < kTreeDepth) todo.emplace_back(path + "/" + name, child, depth + 1);
      } else if (child.type == "file") {
        if (!child.size.is_number()) return -1;
        total += child.size.get<int64_t>();
      }
    }
  }
  return total;
}

// The first existing path at or above `abs` in the predicted world (a missing parent is
// created by copy_path's create_directories): WouldFail when it is not a directory.
void check_parents_creatable(const World& w, const std::string& abs, const std::string& what) {
  std::string p = parent_of(abs);
  for (int depth = 0; depth < 4096; ++depth) {
    Node n = lookup(w, p);
    if (n.src == Node::Unknown) return;
    if (n.exists) {
      bool dir = n.type == "directory" ||
                 (n.type == "link" && n.src == Node::Live && stdfs::is_directory(p));
      if (!dir && !n.type.empty()) throw WouldFail(what + ": " + p + " is not a directory");
      return;
    }
    if (p == "/") return;
    p = parent_of(p);
  }
}

bool under(const std::string& p, const std::string& dir) {
  return p == dir || (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 &&
                      (dir == "/" || p[dir.size()] == '/'));
}

// A change's planned entries: `dst` (and what is under it) becomes `entries`, missing parents
// become new directories.
void put_tree(World& w, const std::string& dst, std::vector<std::pair<std::string, json>> entries,
              const std::string& by, int64_t seq, bool make_parents) {
  if (make_parents) {
    std::vector<std::string> missing;
    std::string p = parent_of(dst);
    for (int depth = 0; depth < 4096 && p != "/"; ++depth) {
      Node n = lookup(w, p);
      if (n.exists || n.src == Node::Unknown) break;
      missing.push_back(p);
      p = parent_of(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it)
      w.set(*it, json{{"exists", true}, {"type", "directory"}, {"size", nullptr}, {"mode", nullptr},
                      {"whole", true}, {"by", by}, {"seq", seq}});
  }
  w.erase_under(dst);
  for (auto& [path, e] : entries) {
    e["by"] = by;
    e["seq"] = seq;
    w.set(path, std::move(e));
  }
}

// The predicted content of a file node: the text, or null when it is not known.
json predicted_content(const Node& n) {
  if (!n.entry) return nullptr;
  if (n.entry->contains("content")) return (*n.entry)["content"];
  if (n.entry->contains("live")) {
    try {
      return os::read_file((*n.entry)["live"].get<std::string>());
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  return nullptr;
}

// Brace expansion of a glob pattern ({a,b}), bounded.
void expand_braces(const std::string& pat, std::vector<std::string>& out, int depth = 0) {
  if (out.size() >= 256) return;
  size_t open = std::string::npos;
  int level = 0;
  size_t close = std::string::npos;
  std::vector<size_t> commas;
  for (size_t i = 0; i < pat.size() && close == std::string::npos; ++i) {
    char c = pat[i];
    if (c == '\\') { ++i; continue; }
    if (c == '{') { if (level++ == 0) { open = i; commas.clear(); } }
    else if (c == '}' && level > 0) { if (--level == 0) { if (commas.empty()) open = std::string::npos; else close = i; } }
    else if (c == ',' && level == 1) commas.push_back(i);
  }
  if (close == std::string::npos || depth > 16) {
    out.push_back(pat);
    return;
  }
  std::string pre = pat.substr(0, open), post = pat.substr(close + 1);
  size_t start = open + 1;
  commas.push_back(close);
  for (size_t c : commas) {
    expand_braces(pre + pat.substr(start, c - start) + post, out, depth + 1);
    start = c + 1;
  }
}

std::string reason(const std::string& probe, const std::string& path, const std::string& by) {
  return probe + " " + path + " after " + by;
}

// A preview that could not look (offline, or it failed): what a copy makes is not known.
bool looked(const json& pv) { return pv.is_object() && !pv.contains("error"); }

json unknown_tree() {
  return json{{"exists", true}, {"type", nullptr}, {"whole", true}, {"partial", true}};
}

// The source of a copy, restore or backup: WouldFail when the live call could not read it.
Node source_node(const World& w, const std::string& abs, const std::string& missing) {
  Node n = lookup(w, abs);
  if (n.src != Node::Unknown && !n.exists) throw WouldFail(missing);
  return n;
}

// Whether the source holds something the copy cannot copy (a fifo, a socket, a device).
void check_copyable(const json& source_digest, bool other, const std::string& what) {
  (void)source_digest;
  if (other) throw WouldFail(what + ": it holds something that is not a file, directory or link");
}

// What a planned copy (fs.copy, fs.backup, fs.restore) of `from` to `to` makes true.
void predict_copy(EffectContext& ctx, const std::string& from, const std::string& to,
                  const std::string& by, bool looked_at_source) {
  World w(ctx);
  std::vector<std::pair<std::string, json>> entries;
  Node fn = lookup(w, from);
  if (looked_at_source && fn.src != Node::Unknown && !fn.type.empty()) {
    if (!fn.exists) return;  // its preview failed: the live call would too
    try {
      entries = copy_entries(w, from, fn, to);
    } catch (const std::exception&) {
      entries.clear();
    }
  }
  if (entries.empty()) entries.emplace_back(to, unknown_tree());
  int64_t seq = w.next_seq();
  put_tree(w, to, std::move(entries), by, seq, true);
}

std::string planned_text(const Node& n, const std::string& abs) {
  if (!n.exists) return "missing";
  if (n.src == Node::Live) return describe_tree(abs);
  return "the planned " + (n.type.empty() ? std::string("content") : n.type);
}

// verify(): took place, with the result the runbook would have had.
json verified(json result) { return json{{"done", true}, {"result", std::move(result)}}; }

// A probe of one path in a dry-run: true with the node when a planned change decides it; false
// with the answer otherwise (null: read it live; an unknown: a planned change left it unknowable).
bool planned_node(EffectContext& ctx, const std::string& probe, const std::string& path, Node* n,
                  json* answer) {
  World w(ctx);
  *answer = nullptr;
  if (w.empty()) return false;
  *n = lookup(w, abs_path(path));
  if (n->src == Node::Live) return false;
  if (n->src == Node::Unknown) {
    *answer = unknown_value(reason(probe, path, n->by));
    return false;
  }
  return true;
}

}  // namespace

json fs_planned_text(EffectContext& ctx, const std::string& probe, const std::string& path) {
  Node n;
  json answer;
  if (!planned_node(ctx, probe, path, &n, &answer)) return answer;
  if (!n.exists) throw EffectError("cannot open " + path + ": No such file or directory");
  if (n.type != "file") return unknown_value(reason(probe, path, n.by));
  json content = predicted_content(n);
  if (!content.is_string()) return unknown_value(reason(probe, path, n.by));
  return content;
}

void fs_plan_file(EffectContext& ctx, const std::string& path, const json& content, const std::string& by) {
  std::string abs = abs_path(path);
  World w(ctx);
  Node old = lookup(w, abs);
  json entry{{"exists", true}, {"type", "file"}, {"mode", old.type == "file" ? old.mode : json(nullptr)}};
  if (content.is_string()) {
    const std::string& c = content.get_ref<const std::string&>();
    entry["size"] = c.size();
    entry["sha256"] = sha256_hex(c);
    if (w.keep_content(c.size())) entry["content"] = c;
  } else {
    entry["size"] = nullptr;
  }
  int64_t seq = w.next_seq();
  put_tree(w, abs, {{abs, std::move(entry)}}, by, seq, false);
}

void register_fs(Registry& r) {
  {
    Effect e;
    e.name = "fs.exists";
    e.summary = "Whether a path exists";
    e.args = {req("path", ArgType::Path, "the path")};
    e.positional = {"path"};
    e.returns = "boolean";
    e.describe = [](const Args& a) { return "check " + a.str("path") + " exists"; };
    e.apply = [](EffectContext&, const Args& a) -> json { return exists(a.str("path")); };
    e.planned = [](const Args&, const json&) -> json { return true; };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      Node n;
      json answer;
      if (!planned_node(ctx, "fs.exists", a.str("path"), &n, &answer)) return answer;
      return n.exists;
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.stat";
    e.summary = "Type, size, mode and modification time of a path";
    e.args = {req("path", ArgType::Path, "the path")};
    e.positional = {"path"};
    e.returns = "{ exists, type = \"file\"|\"directory\"|\"link\"|\"other\", size, mode, mtime } ";
    e.results = {{"exists", "boolean", "whether the path exists"}, {"type", "string", "\"file\", \"directory\", \"link\" or \"other\""}, {"size", "integer", "bytes"}, {"mode", "string", "permission bits"}, {"mtime", "number", "modification time, epoch seconds"}};
    e.describe = [](const Args& a) { return "stat " + a.str("path"); };
    e.apply = [](EffectContext&, const Args& a) -> json {
      struct stat st;
      if (::lstat(a.str("path").c_str(), &st) != 0) return json{{"exists", false}};
      std::string type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory"
                         : S_ISLNK(st.st_mode) ? "link" : "other";
      return json{{"exists", true}, {"type", type}, {"size", static_cast<int64_t>(st.st_size)},
                  {"mode", static_cast<int64_t>(st.st_mode & 07777)},
                  {"mtime", static_cast<int64_t>(st.st_mtime)}};
    };
    e.planned = [](const Args&, const json&) { return json{{"exists", true}, {"type", "file"}, {"size", 0}}; };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      std::string p = a.str("path");
      Node n;
      json answer;
      if (!planned_node(ctx, "fs.stat", p, &n, &answer)) return answer;
      if (!n.exists) return json{{"exists", false}};
      auto unknown = [&](const std::string& field) { return unknown_value(reason("fs.stat", p, n.by) + " (" + field + ")"); };
      json size = n.type == "file" && n.size.is_number() ? n.size
                  : n.type == "link" ? json(static_cast<int64_t>(n.target.size()))
                                     : unknown("size");
      return json{{"exists", true}, {"type", n.type.empty() ? unknown("type") : json(n.type)},
                  {"size", size}, {"mode", n.mode.is_number() ? n.mode : unknown("mode")},
                  {"mtime", unknown("mtime")}};
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.read";
    e.summary = "Read a whole file as text";
    e.args = {req("path", ArgType::Path, "the file"),
              opt("max", ArgType::Int, "refuse files larger than this many bytes", 64 << 20),
              opt("secret", ArgType::Bool,
                  "the content holds secrets: the journal, output and reports get it redacted "
                  "(with the values of KEY=value lines whose keys name a secret); the runbook gets it whole",
                  false)};
    e.positional = {"path"};
    e.returns = "string";
    e.describe = [](const Args& a) {
      return "read " + a.str("path") + (a.boolean("secret") ? " (secret)" : "");
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        std::string p = a.str("path");
        std::error_code ec;
        if (stdfs::is_regular_file(p, ec) &&
            stdfs::file_size(p, ec) > static_cast<uintmax_t>(a.integer("max")))
          throw EffectError(p + " is larger than max (" + std::to_string(a.integer("max")) + " bytes)");
        std::string content = os::read_file(p);
        if (a.boolean("secret"))
          for (const auto& sec : secrets_in_text(content)) ctx.add_secret(sec);
        return content;
      });
    };
    e.planned = [](const Args&, const json&) -> json { return ""; };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      std::string p = a.str("path");
      Node n;
      json answer;
      if (!planned_node(ctx, "fs.read", p, &n, &answer)) return answer;
      if (!n.exists) throw EffectError("cannot read " + p + ": No such file or directory");
      if (n.type == "directory") return "";  // as the live read of a directory gives
      if (n.type != "file") return unknown_value(reason("fs.read", p, n.by));
      if (n.size.is_number() && n.size.get<int64_t>() > a.integer("max"))
        throw EffectError(p + " is larger than max (" + std::to_string(a.integer("max")) + " bytes)");
      json content = predicted_content(n);
      if (!content.is_string()) return unknown_value(reason("fs.read", p, n.by));
      if (a.boolean("secret"))
        for (const auto& sec : secrets_in_text(content.get_ref<const std::string&>())) ctx.add_secret(sec);
      return content;
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.write";
    e.summary = "Write a file atomically (temp file + rename); the previous content is kept as an artifact";
    e.kind = Kind::Change;
    e.args = {req("path", ArgType::Path, "the file"),
              req("content", ArgType::String, "the new content"),
              opt("mode", ArgType::Int, "permission bits, e.g. 0644 written as 420; default keeps the old file's"),
              opt("secret", ArgType::Bool,
                  "the content holds secrets: redacted in the journal, output and reports, like fs.read's", false)};
    e.positional = {"path", "content"};
    e.secrets_of = [](const Args& a) {
      return a.boolean("secret") ? secrets_in_text(a.str("content")) : std::vector<std::string>{};
    };
    e.returns = "{ path, bytes, previous = artifact path of the old content or nil }";
    e.results = {{"path", "string", "the file's path"}, {"bytes", "integer", "bytes written"}, {"previous", "string", "artifact path of the old content, or nil"}};
    e.describe = [](const Args& a) {
      return "write " + a.str("path") + " (" + size_text(a.str("content").size()) + ")";
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string p = a.str("path"), abs = abs_path(p);
      World w(ctx);
      Node n = lookup(w, abs);
      std::string parent = parent_of(abs);
      Node pn = lookup(w, parent);
      // atomic_write makes its temp file beside the target and renames it over it.
      if (pn.src != Node::Unknown) {
        if (!pn.exists)
          throw WouldFail("cannot create a temp file beside " + p + ": No such file or directory");
        bool dir = pn.type == "directory" || (pn.src == Node::Live && stdfs::is_directory(parent));
        if (!pn.type.empty() && !dir)
          throw WouldFail("cannot create a temp file beside " + p + ": Not a directory");
        if (pn.src == Node::Live && ::access(parent.c_str(), W_OK | X_OK) != 0)
          throw WouldFail("cannot create a temp file beside " + p + ": " + std::strerror(errno));
      }
      if (n.exists && n.type == "directory") throw WouldFail("cannot replace " + p + ": Is a directory");
      json out{{"text", ""}, {"basis", {{"sha256", digest(w, abs)}}}};
      const std::string& content = a.str("content");
      if (!n.exists) {
        out["text"] = "creates " + p;
        return out;
      }
      json old = n.src == Node::Live ? json(os::read_file(abs)) : predicted_content(n);
      if (!old.is_string()) {
        out["text"] = "replaces the planned content with " + size_text(content.size());
        return out;
      }
      const std::string& o = old.get_ref<const std::string&>();
      if (o == content) {
        out["text"] = "unchanged (same content)";
        return out;
      }
      auto ol = split(o, '\n'), nl = split(content, '\n');
      size_t changed = 0;
      for (size_t i = 0; i < std::max(ol.size(), nl.size()); ++i)
        if (i >= ol.size() || i >= nl.size() || ol[i] != nl[i]) ++changed;
      out["text"] = "replaces " + size_text(o.size()) + " with " + size_text(content.size()) + ", " +
                    std::to_string(changed) + " lines differ";
      return out;
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        std::string p = a.str("path");
        json previous = nullptr;
        if (exists(p)) {
          previous = artifact_for(ctx, "replaced", p);
          os::copy_path(p, previous.get<std::string>());
        }
        os::atomic_write(p, a.str("content"), a.has("mode") ? static_cast<int>(a.integer("mode")) : -1);
        return json{{"path", abs_path(p)}, {"bytes", a.str("content").size()}, {"previous", previous}};
      });
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"path", abs_path(a.str("path"))}, {"bytes", a.str("content").size()}};
    };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json&, const json&) {
      std::string abs = abs_path(a.str("path"));
      World w(ctx);
      Node old = lookup(w, abs);
      const std::string& content = a.str("content");
      json mode = a.has("mode") ? json(a.integer("mode"))
                  : !old.exists && old.src != Node::Unknown ? json(0644)
                  : old.type == "file" ? old.mode : json(nullptr);
      json entry{{"exists", true}, {"type", "file"}, {"size", content.size()}, {"mode", mode},
                 {"sha256", sha256_hex(content)}};
      if (w.keep_content(content.size())) entry["content"] = content;
      int64_t seq = w.next_seq();
      put_tree(w, abs, {{abs, std::move(entry)}}, d(a), seq, false);
    };
    // The write is atomic (rename): the file holds either the old content or all of the new.
    e.verify = [](EffectContext&, const Args& a) -> json {
      return guarded([&]() -> json {
        std::string p = a.str("path");
        std::error_code ec;
        if (!stdfs::is_regular_file(p, ec) || os::read_file(p) != a.str("content")) return false;
        return verified(json{{"path", abs_path(p)}, {"bytes", a.str("content").size()},
                             {"previous", nullptr}});
      });
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.mkdir";
    e.summary = "Create a directory and its parents (no error if it exists)";
    e.kind = Kind::Change;
    e.args = {req("path", ArgType::Path, "the directory")};
    e.positional = {"path"};
    e.returns = "the directory's absolute path";
    e.describe = [](const Args& a) { return "create directory " + a.str("path"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string p = a.str("path"), abs = abs_path(p);
      World w(ctx);
      Node n = lookup(w, abs);
      if (n.exists) {
        bool dir = n.type == "directory" || n.type.empty() || (n.src == Node::Live && stdfs::is_directory(abs));
        if (!dir) throw WouldFail("cannot create " + p + ": Not a directory");
        return "exists already";
      }
      check_parents_creatable(w, abs, "cannot create " + p);
      return "creates " + p;
    };
    e.apply = [](EffectContext&, const Args& a) -> json {
      std::error_code ec;
      stdfs::create_directories(a.str("path"), ec);
      if (ec) throw EffectError("cannot create " + a.str("path") + ": " + ec.message());
      return abs_path(a.str("path"));
    };
    e.planned = [](const Args& a, const json&) -> json { return abs_path(a.str("path")); };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json&, const json&) {
      std::string abs = abs_path(a.str("path"));
      World w(ctx);
      Node n = lookup(w, abs);
      if (n.exists || n.src == Node::Unknown) return;
      int64_t seq = w.next_seq();
      put_tree(w, abs,
               {{abs, json{{"exists", true}, {"type", "directory"}, {"size", nullptr}, {"mode", nullptr},
                           {"whole", true}}}},
               d(a), seq, true);
    };
    e.verify = [](EffectContext&, const Args& a) -> json {
      std::error_code ec;
      if (!stdfs::is_directory(a.str("path"), ec)) return false;
      return verified(abs_path(a.str("path")));
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.copy";
    e.summary = "Copy a file or directory tree; whatever it replaces is kept as an artifact";
    e.kind = Kind::Change;
    e.args = {req("from", ArgType::Path, "source"), req("to", ArgType::Path, "destination")};
    e.positional = {"from", "to"};
    e.returns = "{ path, previous = artifact path of what was replaced or nil }";
    e.results = {{"path", "string", "the destination"}, {"previous", "string", "artifact path of what was replaced, or nil"}};
    e.describe = [](const Args& a) { return "copy " + a.str("from") + " → " + a.str("to"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string from = abs_path(a.str("from")), to = abs_path(a.str("to"));
      std::string what = "cannot copy " + a.str("from") + " to " + a.str("to");
      World w(ctx);
      Node fn = source_node(w, from, a.str("from") + " does not exist");
      // What is at `to` is moved away first: a source at or under it goes with it.
      if (under(from, to)) throw WouldFail(what + ": the source lies in what the copy replaces, which is moved away first");
      check_parents_creatable(w, to, what);
      bool other = false;
      json source = digest(w, from, &other);
      check_copyable(source, other, what);
      Node tn = lookup(w, to);
      return json{{"text", planned_text(fn, from) + (tn.exists ? "; replaces " + planned_text(tn, to) : "")},
                  {"basis", {{"sha256", digest(w, to)}, {"source", source}}}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("from"))) throw EffectError(a.str("from") + " does not exist");
        json previous = set_aside(ctx, "replaced", a.str("to"));
        os::copy_path(a.str("from"), a.str("to"));
        return json{{"path", abs_path(a.str("to"))}, {"previous", previous}};
      });
    };
    e.planned = [](const Args& a, const json&) { return json{{"path", abs_path(a.str("to"))}}; };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json& pv, const json&) {
      predict_copy(ctx, abs_path(a.str("from")), abs_path(a.str("to")), d(a), looked(pv));
    };
    // Done when the destination holds exactly the source (a half-finished copy does not).
    e.verify = [](EffectContext&, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("from")) || !exists(a.str("to"))) return false;
        if (tree_digest(a.str("from")) != tree_digest(a.str("to"))) return false;
        return verified(json{{"path", abs_path(a.str("to"))}, {"previous", nullptr}});
      });
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.remove";
    e.summary = "Remove a file or tree by moving it into the run's artifact directory (recoverable)";
    e.kind = Kind::Change;
    e.args = {req("path", ArgType::Path, "what to remove")};
    e.positional = {"path"};
    e.returns = "{ removed = boolean, moved_to = artifact path }";
    e.results = {{"removed", "boolean", "whether something was removed"}, {"moved_to", "string", "artifact path it was moved to"}};
    e.describe = [](const Args& a) { return "remove " + a.str("path") + " (kept in the run's artifacts)"; };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string abs = abs_path(a.str("path"));
      World w(ctx);
      Node n = lookup(w, abs);
      return json{{"text", n.exists ? "moves away " + planned_text(n, abs) : std::string("nothing there")},
                  {"basis", {{"sha256", digest(w, abs)}}}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      json to = set_aside(ctx, "removed", a.str("path"));
      return json{{"removed", !to.is_null()}, {"moved_to", to}};
    };
    e.planned = [](const Args&, const json&) { return json{{"removed", true}}; };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json&, const json&) {
      std::string abs = abs_path(a.str("path"));
      World w(ctx);
      int64_t seq = w.next_seq();
      put_tree(w, abs, {{abs, json{{"exists", false}}}}, d(a), seq, false);
    };
    // The path is moved away whole (a rename, or copy then delete across file systems): gone
    // means done. Where it went is in the interrupted run's artifact directory.
    e.verify = [](EffectContext&, const Args& a) -> json {
      if (exists(a.str("path"))) return false;
      return verified(json{{"removed", true}, {"moved_to", nullptr}});
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.glob";
    e.summary = "Paths matching a shell pattern (* ? [..] {a,b}), sorted";
    e.args = {req("pattern", ArgType::String, "e.g. \"backups/pr-30-*\"")};
    e.positional = {"pattern"};
    e.returns = "list of paths";
    e.describe = [](const Args& a) { return "list " + a.str("pattern"); };
    e.apply = [](EffectContext&, const Args& a) -> json { return glob_paths(a.str("pattern")); };
    e.planned = [](const Args&, const json&) { return json::array(); };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      World w(ctx);
      if (w.empty()) return nullptr;
      std::string pattern = a.str("pattern");
      if (!pattern.empty() && pattern[0] == '~') {
        const char* home = std::getenv("HOME");
        if (!home || (pattern.size() > 1 && pattern[1] != '/')) return nullptr;
        pattern = home + pattern.substr(1);
      }
      // The literal directory part of the pattern, as given and absolute: predicted paths are
      // shown the way the live glob shows them.
      size_t g = pattern.find_first_of("*?[{\\");
      size_t slash = pattern.rfind('/', g == std::string::npos ? std::string::npos : g);
      std::string lit = slash == std::string::npos ? "" : pattern.substr(0, slash + 1);
      std::string abs_lit = abs_path(lit.empty() ? "." : lit);
      if (abs_lit.empty() || abs_lit.back() != '/') abs_lit += "/";
      std::vector<std::string> pats;
      expand_braces(abs_lit + pattern.substr(lit.size()), pats);
      auto matches = [&](const std::string& path) {
        for (const auto& pt : pats)
          if (::fnmatch(pt.c_str(), path.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) return true;
        return false;
      };
      bool touched = false;
      std::set<std::string> out;
      for (const auto& live : glob_paths(a.str("pattern"))) {
        Node n = lookup(w, abs_path(live));
        if (n.src == Node::Unknown) return unknown_value(reason("fs.glob", a.str("pattern"), n.by));
        if (n.src != Node::Live) touched = true;
        if (n.exists) out.insert(live);
      }
      std::string lit_dir = abs_lit.size() > 1 ? abs_lit.substr(0, abs_lit.size() - 1) : abs_lit;
      for (const auto& k : w.keys()) {
        const json* e = w.find(k);
        bool partial = e->value("partial", false) && e->value("exists", false);
        if (partial && (under(k, lit_dir) || under(lit_dir, k))) {
          // Part of what it would list is not known.
          return unknown_value(reason("fs.glob", a.str("pattern"), e->value("by", "")));
        }
        if (!matches(k)) continue;
        touched = true;
        if (!lookup(w, k).exists) continue;
        out.insert(k.compare(0, abs_lit.size(), abs_lit) == 0 ? lit + k.substr(abs_lit.size()) : k);
      }
      if (!touched) return nullptr;
      return json(std::vector<std::string>(out.begin(), out.end()));
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.backup";
    e.summary = "Copy a file or directory to a timestamped backup beside it (or in dir)";
    e.kind = Kind::Change;
    e.args = {req("path", ArgType::Path, "what to back up"),
              opt("dir", ArgType::Path, "where the backup goes (default: beside path)"),
              opt("private", ArgType::Bool,
                  "true: the backup goes into the run's artifacts (0700; files 0600), never "
                  "beside path: for files holding secrets (.env) inside a work tree",
                  false)};
    e.positional = {"path", "dir"};
    e.returns = "the backup's path: <dir>/<name>.bak-YYYYmmdd-HHMMSS";
    e.describe = [](const Args& a) {
      return "back up " + a.str("path") +
             (a.boolean("private") ? " into the run's artifacts (private)"
                                   : a.has("dir") ? " into " + a.str("dir") : "");
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string src = abs_path(a.str("path"));
      World w(ctx);
      Node sn = source_node(w, src, a.str("path") + " does not exist");
      if (a.boolean("private") && a.has("dir")) throw EffectError("give dir or private = true, not both");
      std::string base = backup_name(a, ctx.artifact_path()), dest = base;
      for (int i = 1; i <= 10000 && lookup(w, dest).exists; ++i) dest = base + "." + std::to_string(i);
      std::string dir = parent_of(dest);
      std::string what = "cannot back up " + a.str("path") + " into " + dir;
      check_parents_creatable(w, dest, what);
      // Room for it where it goes (the nearest directory that exists now).
      int64_t size = tree_size(w, src, sn);
      std::string on = dir;
      for (int i = 0; i < 4096 && !exists(on) && on != "/"; ++i) on = parent_of(on);
      if (size >= 0 && exists(on)) {
        try {
          auto df = os::disk_free(on);
          uint64_t room = ::geteuid() == 0 ? df.free : df.avail;
          if (static_cast<uint64_t>(size) > room)
            throw WouldFail(what + ": it needs " + size_text(static_cast<uint64_t>(size)) + " and the disk has " +
                            size_text(room) + " free");
        } catch (const WouldFail&) {
          throw;
        } catch (const std::exception&) {
        }
      }
      bool other = false;
      json source = digest(w, src, &other);
      check_copyable(source, other, what);
      return json{{"text", planned_text(sn, src) + " → " + dest}, {"path", dest}, {"basis", {{"source", source}}}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        if (a.boolean("private") && a.has("dir")) throw EffectError("give dir or private = true, not both");
        if (!exists(a.str("path"))) throw EffectError(a.str("path") + " does not exist");
        std::string dest =
            os::unique_path(backup_name(a, a.boolean("private") ? ctx.artifact_dir() : ""));
        if (a.boolean("private")) {
          std::error_code ec;
          stdfs::create_directories(parent_of(dest), ec);
          if (ec) throw EffectError("cannot create " + parent_of(dest) + ": " + ec.message());
        }
        os::copy_path(a.str("path"), dest);
        if (a.boolean("private")) make_private(dest);
        return dest;
      });
    };
    e.planned = [](const Args& a, const json& pv) -> json { return pv_str(pv, "path", backup_name(a)); };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json& pv, const json& planned) {
      if (!planned.is_string()) return;
      predict_copy(ctx, abs_path(a.str("path")), planned.get<std::string>(), d(a), looked(pv));
    };
    // The backup's name has the time in it, so look for one made since the effect began whose
    // content equals the source's (a half-made copy does not count; it stays, named, unused).
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("path"))) return nullptr;
        std::string pattern = backup_name(a, a.boolean("private") ? ctx.artifact_path() : "");
        pattern = pattern.substr(0, pattern.rfind(".bak-") + 5);
        std::string since = ctx.doubt_began_ms() ? stamp_local(ctx.doubt_began_ms() - 1000) : "";
        std::string want = tree_digest(a.str("path"));
        for (const auto& cand : glob_paths(pattern + "*")) {
          if (cand.substr(pattern.size(), since.size()) < since) continue;
          if (tree_digest(cand) == want) return verified(cand);
        }
        return false;
      });
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.restore";
    e.summary = "Put a backup back in place; what is there now is moved into the run's artifacts first";
    e.kind = Kind::Change;
    e.args = {req("backup", ArgType::Path, "the backup (from fs.backup or fs.latest)"),
              req("path", ArgType::Path, "where it goes")};
    e.positional = {"backup", "path"};
    e.returns = "{ path, from, previous = artifact path of the replaced content or nil }";
    e.results = {{"path", "string", "the restored path"}, {"from", "string", "the backup it came from"}, {"previous", "string", "artifact path of the replaced content, or nil"}};
    e.describe = [](const Args& a) { return "restore " + a.str("path") + " from " + a.str("backup"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string b = abs_path(a.str("backup")), p = abs_path(a.str("path"));
      std::string what = "cannot restore " + a.str("path") + " from " + a.str("backup");
      World w(ctx);
      Node bn = source_node(w, b, "backup " + a.str("backup") + " does not exist");
      if (bn.type == "other") throw WouldFail(what + ": the backup is not a file, directory or link");
      if (under(b, p)) throw WouldFail(what + ": the backup lies in what it replaces, which is moved away first");
      check_parents_creatable(w, p, what);
      bool other = false;
      json source = digest(w, b, &other);
      check_copyable(source, other, what);
      Node pn = lookup(w, p);
      return json{{"text", "replaces " + planned_text(pn, p) + " with " + planned_text(bn, b)},
                  {"basis", {{"sha256", digest(w, p)}, {"source", source}}}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("backup")))
          throw EffectError("backup " + a.str("backup") + " does not exist");
        json previous = set_aside(ctx, "replaced", a.str("path"));
        os::copy_path(a.str("backup"), a.str("path"));
        return json{{"path", abs_path(a.str("path"))}, {"from", abs_path(a.str("backup"))},
                    {"previous", previous}};
      });
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"path", abs_path(a.str("path"))}, {"from", abs_path(a.str("backup"))}};
    };
    e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json& pv, const json&) {
      predict_copy(ctx, abs_path(a.str("backup")), abs_path(a.str("path")), d(a), looked(pv));
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.latest";
    e.summary = "The newest entry of a directory whose name matches a pattern (the newest backup)";
    e.args = {req("dir", ArgType::Path, "directory to look in"),
              opt("pattern", ArgType::String, "name pattern", "*")};
    e.positional = {"dir", "pattern"};
    e.returns = "path, or nil when nothing matches";
    e.describe = [](const Args& a) { return "find the newest " + a.str("pattern") + " in " + a.str("dir"); };
    e.apply = [](EffectContext&, const Args& a) -> json {
      std::error_code ec;
      std::string best;
      stdfs::file_time_type best_time{};
      for (auto it = stdfs::directory_iterator(a.str("dir"), ec);
           !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!glob_match(a.str("pattern"), name)) continue;
        auto t = it->last_write_time(ec);
        // Newest by time; equal times by name (timestamped names sort by age).
        if (best.empty() || t > best_time || (t == best_time && it->path().string() > best)) {
          best = it->path().string();
          best_time = t;
        }
      }
      if (best.empty()) return nullptr;
      return best;
    };
    e.planned = [](const Args& a, const json&) -> json { return a.str("dir") + "/" + a.str("pattern"); };
    // The planned changes in the directory are newer than anything in it now, in plan order.
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      World w(ctx);
      if (w.empty()) return nullptr;
      std::string dir = a.str("dir"), abs = abs_path(dir), pattern = a.str("pattern");
      Node dn = lookup(w, abs);
      bool touched = dn.src != Node::Live;
      for (const auto& nm : w.child_names(abs))
        if (glob_match(pattern, nm)) touched = true;
      std::string base = abs == "/" ? "" : abs;
      std::string by = dn.by;
      struct Rank {
        int planned = 0;
        int64_t seq = 0;
        stdfs::file_time_type t{};
        std::string name;
      };
      std::optional<Rank> best;
      auto newer = [](const Rank& x, const Rank& y) {
        if (x.planned != y.planned) return x.planned > y.planned;
        if (x.planned ? x.seq != y.seq : x.t != y.t) return x.planned ? x.seq > y.seq : x.t > y.t;
        return x.name > y.name;
      };
      if (dn.src == Node::Unknown) return unknown_value(reason("fs.latest", dir, by));
      if (dn.exists && (dn.type == "directory" || dn.src == Node::Live)) {
        for (auto& [name, n] : children(w, abs, dn, kDigestEntries)) {
          if (!glob_match(pattern, name)) continue;
          if (n.src == Node::Unknown) return unknown_value(reason("fs.latest", dir, n.by));
          Rank r;
          r.name = name;
          int64_t inside = w.dir_seq(base + "/" + name);
          if (n.src == Node::Predicted || inside) {
            r.planned = 1;
            r.seq = std::max(n.seq, inside);
            touched = true;
            if (!n.by.empty()) by = n.by;
          } else {
            std::error_code ec;
            r.t = stdfs::last_write_time(base + "/" + name, ec);
          }
          if (!best || newer(r, *best)) best = r;
        }
      }
      if (!touched) return nullptr;
      if (!best) return predicted_nil();  // nothing there after the planned changes
      return (stdfs::path(dir) / best->name).string();
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.sha256";
    e.summary = "SHA-256 of a file";
    e.args = {req("path", ArgType::Path, "the file")};
    e.positional = {"path"};
    e.returns = "hex string";
    e.describe = [](const Args& a) { return "checksum " + a.str("path"); };
    e.apply = [](EffectContext&, const Args& a) -> json {
      return guarded([&]() -> json { return sha256_file(a.str("path")); });
    };
    e.planned = [](const Args&, const json&) -> json { return std::string(64, '0'); };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      std::string p = a.str("path");
      Node n;
      json answer;
      if (!planned_node(ctx, "fs.sha256", p, &n, &answer)) return answer;
      if (!n.exists) throw EffectError("cannot read " + p + ": No such file or directory");
      if (n.type != "file" || n.sha.empty()) return unknown_value(reason("fs.sha256", p, n.by));
      return n.sha;
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.disk_free";
    e.summary = "Space on the file system holding a path";
    e.args = {opt("path", ArgType::Path, "any path on the file system", ".")};
    e.positional = {"path"};
    e.returns = "{ total, free, avail (bytes), used_percent }";
    e.results = {{"total", "integer", "bytes"}, {"free", "integer", "bytes"}, {"avail", "integer", "bytes available to the user"}, {"used_percent", "number", "0..100"}};
    e.describe = [](const Args& a) { return "check free space at " + a.str("path"); };
    e.apply = [](EffectContext&, const Args& a) -> json {
      return guarded([&]() -> json {
        auto d = os::disk_free(a.str("path"));
        return json{{"total", d.total}, {"free", d.free}, {"avail", d.avail},
                    {"used_percent", d.used_percent}};
      });
    };
    e.planned = [](const Args&, const json&) {
      return json{{"total", 0}, {"free", 0}, {"avail", 0}, {"used_percent", 0}};
    };
    add(r, std::move(e));
  }
}

}  // namespace rb
