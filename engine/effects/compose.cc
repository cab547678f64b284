// compose.set_image{ file =, image =, tag = }: the tag of one image in a docker-compose file,
// the edit behind "roll the backend back to the previous image" (003: `sed -i 's/:latest/:prev/'
// docker-compose.yml`). Only the `image:` lines of that image change; every other byte stays.
//
// A compose file holds inline passwords (POSTGRES_PASSWORD: ...): its content is never a
// result, an argument or a preview. The journal gets the image lines (line number, old and new
// reference) and nothing else; the values of secret-named keys in the file are registered for
// redaction besides, so that a line that carries one by accident is masked too.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/hash.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "effects/effects.h"
#include "effects/fs_world.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

const std::string kEff = "compose.set_image";
constexpr uintmax_t kMaxFile = 4 << 20;  // a compose file is a few KiB; refuse anything huge

// A docker tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
bool valid_tag(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  if (!(std::isalnum(static_cast<unsigned char>(t[0])) || t[0] == '_')) return false;
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

// A repository without tag or digest: registry host[:port]/path, lower case path components.
bool valid_image(const std::string& i) {
  if (i.empty() || i.size() > 255 || i.front() == '/' || i.back() == '/' || i.back() == ':') return false;
  for (char c : i)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':'))
      return false;
  // A ':' only in the registry part (a port), never after the last '/': that would be a tag.
  auto colon = i.rfind(':'), slash = i.rfind('/');
  return colon == std::string::npos || (slash != std::string::npos && colon < slash);
}

struct Ref {
  std::string repo, tag, digest;  // tag "" = none (latest)
};

Ref parse_ref(const std::string& v) {
  Ref r;
  std::string s = v;
  if (auto at = s.find('@'); at != std::string::npos) {
    r.digest = s.substr(at + 1);
    s = s.substr(0, at);
  }
  auto colon = s.rfind(':'), slash = s.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    r.tag = s.substr(colon + 1);
    s = s.substr(0, colon);
  }
  r.repo = s;
  return r;
}

struct Hit {
  size_t line = 0;  // 1-based
  std::string from, to;
  size_t value_begin = 0, value_end = 0;  // of the reference within the line (quotes excluded)
  std::string note;                      // a dropped digest
};

struct Scan {
  std::vector<std::string> lines;  // without '\n'
  bool final_newline = false;
  std::vector<Hit> hits;
  std::vector<std::string> others;  // the other images in the file (for the error)
};

// The `image:` lines of the file whose repository is `image`. A reference that is not plain
// text (an ${INTERPOLATION}, a YAML anchor or alias) is refused: its value is decided elsewhere.
Scan scan(const std::string& text, const std::string& image, const std::string& tag, const std::string& file) {
  Scan s;
  s.final_newline = !text.empty() && text.back() == '\n';
  s.lines = split(text, '\n');
  if (s.final_newline && !s.lines.empty()) s.lines.pop_back();
  for (size_t n = 0; n < s.lines.size(); ++n) {
    const std::string& line = s.lines[n];
    size_t i = 0;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (line.compare(i, 2, "- ") == 0) {  // a list item "- image: x" (rare, but valid)
      i += 2;
      while (i < line.size() && line[i] == ' ') ++i;
    }
    size_t key_end = i;
    bool quoted_key = i < line.size() && (line[i] == '"' || line[i] == '\'');
    if (quoted_key) {
      if (line.compare(i + 1, 6, "image" + std::string(1, line[i])) != 0) continue;
      key_end = i + 7;
    } else {
      if (line.compare(i, 5, "image") != 0) continue;
      key_end = i + 5;
    }
    if (key_end >= line.size() || line[key_end] != ':') continue;
    size_t v = key_end + 1;
    while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
    if (v >= line.size() || line[v] == '#') continue;  // a block scalar or empty: not a reference here
    char q = line[v] == '"' || line[v] == '\'' ? line[v] : 0;
    size_t b = q ? v + 1 : v, e;
    if (q) {
      e = line.find(q, b);
      if (e == std::string::npos) continue;
    } else {
      e = b;
      while (e < line.size() && line[e] != ' ' && line[e] != '\t' && line[e] != '#') ++e;
    }
    std::string value = line.substr(b, e - b);
    Ref r = parse_ref(value);
    if (value.find('$') != std::string::npos) {
      // image: app:${TAG}: the tag is decided by a variable, not by this line.
      if (value.find(image) != std::string::npos)
        throw WouldFail(kEff + ": " + file + " line " + std::to_string(n + 1) + " takes the reference of " +
                        image + " from a variable (" + value.substr(0, 120) +
                        "); set the variable (in the env file) instead");
      if (s.others.size() < 20 && value.size() < 200) s.others.push_back(value);
      continue;
    }
    if (r.repo != image) {
      if (s.others.size() < 20 && value.size() < 200) s.others.push_back(value);
      continue;
    }
    Hit h;
    h.line = n + 1;
    h.from = value;
    h.to = image + ":" + tag;
    h.value_begin = b;
    h.value_end = e;
    if (!r.digest.empty()) h.note = "its digest @" + r.digest.substr(0, 80) + " is dropped: it would pin the old image";
    s.hits.push_back(std::move(h));
  }
  return s;
}

std::string rewrite(const Scan& s) {
  std::vector<std::string> lines = s.lines;
  for (const auto& h : s.hits)
    lines[h.line - 1] = lines[h.line - 1].substr(0, h.value_begin) + h.to + lines[h.line - 1].substr(h.value_end);
  std::string out = join(lines, "\n");
  if (s.final_newline) out += "\n";
  return out;
}

// The values of secret-named keys in a compose file, in its two spellings (`KEY: value`,
// `- KEY=value`), and URL passwords: registered for redaction before anything is shown.
std::vector<std::string> compose_secrets(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& raw : split(text, '\n')) {
    std::string line = trim(raw);
    if (line.rfind("- ", 0) == 0) line = trim(line.substr(2));
    size_t eq = line.find('='), colon = line.find(": ");
    size_t cut = std::min(eq, colon);
    if (cut == std::string::npos) {
      if (!line.empty() && line.back() == ':') continue;
      if (std::string pw = url_password(line); !pw.empty()) out.push_back(pw);
      continue;
    }
    std::string key = trim(line.substr(0, cut)), value = trim(line.substr(cut + (cut == eq ? 1 : 2)));
    if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'') && key.back() == key.front())
      key = key.substr(1, key.size() - 2);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (value.empty()) continue;
    // `- KEY=value` inside a quoted list item: "KEY=value"
    if (!key.empty() && (key.front() == '"' || key.front() == '\'')) key = key.substr(1);
    if (!value.empty() && (value.back() == '"' || value.back() == '\'')) value.pop_back();
    if (value.size() >= 3 && secret_name(key)) out.push_back(value);
    for (const auto& s : embedded_secrets(value)) out.push_back(s);
  }
  return out;
}

std::string read_compose(const std::string& p) {
  std::error_code ec;
  if (!stdfs::exists(p, ec)) throw WouldFail(kEff + ": the compose file " + p + " does not exist");
  if (!stdfs::is_regular_file(p, ec)) throw WouldFail(kEff + ": " + p + " is not a regular file");
  if (stdfs::file_size(p, ec) > kMaxFile)
    throw WouldFail(kEff + ": " + p + " is larger than " + size_text(kMaxFile) + "; not a compose file");
  try {
    return os::read_file(p);
  } catch (const std::exception& e) {
    throw EffectError(kEff + ": cannot read " + p + ": " + e.what());
  }
}

void check_args(const Args& a) {
  if (!valid_image(a.str("image")))
    bad_arg(kEff, "image", "a repository without tag, e.g. ghcr.io/org/backend-v2, got \"" +
                               a.str("image").substr(0, 200) + "\"");
  if (!valid_tag(a.str("tag")))
    bad_arg(kEff, "tag", "a docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 128), got \"" + a.str("tag").substr(0, 200) + "\"");
}

json lines_json(const Scan& s) {
  json out = json::array();
  for (const auto& h : s.hits) {
    json l{{"line", h.line}, {"from", h.from}, {"to", h.to}};
    if (!h.note.empty()) l["note"] = h.note;
    out.push_back(std::move(l));
  }
  return out;
}

std::string diff_text(const std::string& file, const Scan& s) {
  std::vector<std::string> parts;
  for (const auto& h : s.hits)
    parts.push_back("line " + std::to_string(h.line) + ": image " + h.from +
                    (h.from == h.to ? " (already)" : " → " + h.to) + (h.note.empty() ? "" : " (" + h.note + ")"));
  return file + ": " + join(parts, "; ");
}

// Scans the file (its planned content in a dry-run, when an earlier change wrote it), or throws.
Scan scan_or_fail(EffectContext& ctx, const Args& a, const std::string& text) {
  for (const auto& sec : compose_secrets(text)) ctx.add_secret(sec);
  Scan s = scan(text, a.str("image"), a.str("tag"), a.str("file"));
  if (s.hits.empty())
    throw WouldFail(kEff + ": no image: line of " + a.str("image") + " in " + a.str("file") +
                    (s.others.empty() ? "" : " (images there: " + join(s.others, ", ") + ")"));
  return s;
}

bool unchanged(const Scan& s) {
  return std::all_of(s.hits.begin(), s.hits.end(), [](const Hit& h) { return h.from == h.to; });
}

}  // namespace

void register_compose(Registry& r) {
  Effect e;
  e.name = "compose.set_image";
  e.summary =
      "Set the tag of one image in a docker-compose file (only its image: lines change); the journal "
      "gets those lines, never the file, which may hold passwords";
  e.kind = Kind::Change;
  e.args = {req("file", ArgType::Path, "the compose file, e.g. docker-compose.yml"),
            req("image", ArgType::String, "the repository, without tag: ghcr.io/your-org/backend-v2"),
            req("tag", ArgType::String, "the tag to run, e.g. the previous release's")};
  e.returns =
      "{ file, image, tag, changed, lines = { { line, from, to } }, previous = artifact path of the old file "
      "or nil }";
  e.results = {{"file", "string", "the compose file's absolute path"}, {"image", "string", "the image"}, {"tag", "string", "the tag set"}, {"changed", "boolean", "whether the file changed"}, {"lines", "list", "{ line, from, to } of each line changed"}, {"previous", "string", "artifact path of the old file, or nil"}};
  e.describe = [](const Args& a) {
    return "set image " + a.str("image") + " to tag " + a.str("tag") + " in " + a.str("file");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    check_args(a);
    std::string file = abs_path(a.str("file"));
    json planned = fs_planned_text(ctx, kEff, file);
    if (!planned.is_null() && !planned.is_string())
      throw EffectError("the file's content after an earlier planned change is not known");
    std::string text = planned.is_string() ? planned.get<std::string>() : read_compose(file);
    Scan s = scan_or_fail(ctx, a, text);
    bool same = unchanged(s);
    return json{{"text", same ? a.str("file") + ": image " + a.str("image") + " is at " + a.str("tag") +
                                    " already; nothing to do"
                              : diff_text(a.str("file"), s)},
                {"changed", !same},
                {"lines", lines_json(s)},
                {"basis", {{"sha256", sha256_hex(text)}}}};
  };
  e.planned = [](const Args& a, const json& pv) {
    json r{{"file", abs_path(a.str("file"))}, {"image", a.str("image")}, {"tag", a.str("tag")},
           {"changed", pv_or(pv, "changed", true)}};
    if (pv.is_object() && pv.contains("lines")) r["lines"] = pv["lines"];
    return r;
  };
  e.predict = [d = e.describe](EffectContext& ctx, const Args& a, const json& pv, const json&) {
    if (pv.is_object() && pv.contains("changed") && pv["changed"] == false) return;
    // The new content is computed again from what the preview read: the predicted world (in
    // memory for this rehearsal, never journaled) keeps it for later reads.
    json content = nullptr;
    try {
      std::string file = abs_path(a.str("file"));
      json planned = fs_planned_text(ctx, kEff, file);
      std::string text = planned.is_string() ? planned.get<std::string>() : read_compose(file);
      content = rewrite(scan(text, a.str("image"), a.str("tag"), a.str("file")));
    } catch (const std::exception&) {
      content = nullptr;
    }
    fs_plan_file(ctx, a.str("file"), content, d(a));
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    check_args(a);
    std::string file = abs_path(a.str("file"));
    std::string text = read_compose(file);
    Scan s = scan_or_fail(ctx, a, text);
    json out{{"file", file}, {"image", a.str("image")}, {"tag", a.str("tag")}, {"lines", lines_json(s)},
             {"previous", nullptr}};
    if (unchanged(s)) {
      out["changed"] = false;
      ctx.note(a.str("file") + ": image " + a.str("image") + " is at " + a.str("tag") + " already");
      return out;
    }
    try {
      // The old file is kept in the run's artifacts (beside the journal, not in it).
      std::string rel = file;
      while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
      std::string prev = os::unique_path(ctx.artifact_dir() + "/replaced/" + rel);
      os::copy_path(file, prev);
      int mode = -1;
      std::error_code ec;
      auto st = stdfs::status(file, ec);
      if (!ec) mode = static_cast<int>(st.permissions() & stdfs::perms::mask);
      os::atomic_write(file, rewrite(s), mode);
      out["previous"] = prev;
    } catch (const EffectError&) {
      throw;
    } catch (const std::exception& e) {
      throw EffectError(kEff + ": " + e.what(), out);
    }
    out["changed"] = true;
    // What changed, for the report and `runbook show`: the image lines only.
    ctx.note(diff_text(a.str("file"), s));
    return out;
  };
  // Done when every image: line of the image names the tag.
  e.verify = [](EffectContext& ctx, const Args& a) -> json {
    try {
      std::string file = abs_path(a.str("file"));
      Scan s = scan_or_fail(ctx, a, read_compose(file));
      return unchanged(s);
    } catch (const std::exception&) {
      return nullptr;
    }
  };
  r.add(std::move(e));
}

}  // namespace rb
