// fs.*: files and directories. Nothing here destroys data: remove, restore and overwriting
// writes move what they replace into the run's artifact directory.
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "core/clock.h"
#include "core/hash.h"
#include "core/strings.h"
#include "effects/effects.h"
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

std::string backup_name(const Args& a) {
  std::string path = abs_path(a.str("path"));
  stdfs::path p(path);
  std::string dir = a.has("dir") ? abs_path(a.str("dir")) : p.parent_path().string();
  return dir + "/" + stamped_backup_name(p.filename().string());
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

// verify(): took place, with the result the runbook would have had.
json verified(json result) { return json{{"done", true}, {"result", std::move(result)}}; }

}  // namespace

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
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.stat";
    e.summary = "Type, size, mode and modification time of a path";
    e.args = {req("path", ArgType::Path, "the path")};
    e.positional = {"path"};
    e.returns = "{ exists, type = \"file\"|\"directory\"|\"link\"|\"other\", size, mode, mtime } ";
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
    e.describe = [](const Args& a) {
      return "write " + a.str("path") + " (" + size_text(a.str("content").size()) + ")";
    };
    e.preview = [](EffectContext&, const Args& a) -> json {
      // basis: the content it replaces (a saved plan refuses to execute when it changed).
      std::string p = a.str("path");
      if (!exists(p)) return json{{"text", "creates " + p}, {"basis", {{"sha256", "absent"}}}};
      std::string old = os::read_file(p);
      json basis{{"sha256", sha256_hex(old)}};
      if (old == a.str("content")) return json{{"text", "unchanged (same content)"}, {"basis", basis}};
      auto ol = split(old, '\n'), nl = split(a.str("content"), '\n');
      size_t changed = 0;
      for (size_t i = 0; i < std::max(ol.size(), nl.size()); ++i)
        if (i >= ol.size() || i >= nl.size() || ol[i] != nl[i]) ++changed;
      return json{{"text", "replaces " + size_text(old.size()) + " with " + size_text(a.str("content").size()) +
                               ", " + std::to_string(changed) + " lines differ"},
                  {"basis", basis}};
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
    e.preview = [](EffectContext&, const Args& a) -> json {
      return exists(a.str("path")) ? "exists already" : "creates " + a.str("path");
    };
    e.apply = [](EffectContext&, const Args& a) -> json {
      std::error_code ec;
      stdfs::create_directories(a.str("path"), ec);
      if (ec) throw EffectError("cannot create " + a.str("path") + ": " + ec.message());
      return abs_path(a.str("path"));
    };
    e.planned = [](const Args& a, const json&) -> json { return abs_path(a.str("path")); };
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
    e.describe = [](const Args& a) { return "copy " + a.str("from") + " → " + a.str("to"); };
    e.preview = [](EffectContext&, const Args& a) -> json {
      if (!exists(a.str("from"))) throw EffectError(a.str("from") + " does not exist");
      return describe_tree(a.str("from")) +
             (exists(a.str("to")) ? "; replaces " + describe_tree(a.str("to")) : "");
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
    e.describe = [](const Args& a) { return "remove " + a.str("path") + " (kept in the run's artifacts)"; };
    e.preview = [](EffectContext&, const Args& a) -> json {
      return exists(a.str("path")) ? "moves away " + describe_tree(a.str("path")) : "nothing there";
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      json to = set_aside(ctx, "removed", a.str("path"));
      return json{{"removed", !to.is_null()}, {"moved_to", to}};
    };
    e.planned = [](const Args&, const json&) { return json{{"removed", true}}; };
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
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.backup";
    e.summary = "Copy a file or directory to a timestamped backup beside it (or in dir)";
    e.kind = Kind::Change;
    e.args = {req("path", ArgType::Path, "what to back up"),
              opt("dir", ArgType::Path, "where the backup goes (default: beside path)")};
    e.positional = {"path", "dir"};
    e.returns = "the backup's path: <dir>/<name>.bak-YYYYmmdd-HHMMSS";
    e.describe = [](const Args& a) {
      return "back up " + a.str("path") + (a.has("dir") ? " into " + a.str("dir") : "");
    };
    e.preview = [](EffectContext&, const Args& a) -> json {
      if (!exists(a.str("path"))) throw EffectError(a.str("path") + " does not exist");
      return describe_tree(a.str("path")) + " → " + backup_name(a);
    };
    e.apply = [](EffectContext&, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("path"))) throw EffectError(a.str("path") + " does not exist");
        std::string dest = os::unique_path(backup_name(a));
        os::copy_path(a.str("path"), dest);
        return dest;
      });
    };
    e.planned = [](const Args& a, const json&) -> json { return backup_name(a); };
    // The backup's name has the time in it, so look for one made since the effect began whose
    // content equals the source's (a half-made copy does not count; it stays, named, unused).
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      return guarded([&]() -> json {
        if (!exists(a.str("path"))) return nullptr;
        std::string pattern = backup_name(a);
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
    e.describe = [](const Args& a) { return "restore " + a.str("path") + " from " + a.str("backup"); };
    e.preview = [](EffectContext&, const Args& a) -> json {
      if (!exists(a.str("backup"))) throw EffectError("backup " + a.str("backup") + " does not exist");
      return "replaces " + describe_tree(a.str("path")) + " with " + describe_tree(a.str("backup"));
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
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.disk_free";
    e.summary = "Space on the file system holding a path";
    e.args = {opt("path", ArgType::Path, "any path on the file system", ".")};
    e.positional = {"path"};
    e.returns = "{ total, free, avail (bytes), used_percent }";
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
