// fs.grep and fs.tail: reading logs of any size. A log is read in fixed-size chunks and only the
// answer (counts and a bounded number of bounded lines) is kept and journaled, so memory and
// journal growth do not depend on the size of the file (fs.read copies the whole text).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>

#include "core/clock.h"
#include "core/duration.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/fs_world.h"
#include "effects/util.h"

namespace rb {
namespace {

constexpr size_t kChunk = 256 << 10;        // bytes read at a time
constexpr size_t kShownLine = 4096;         // a returned line longer than this is cut
constexpr size_t kScanWindow = 1 << 20;     // a longer line is matched in windows of this size
constexpr int64_t kMaxLines = 10000;        // fs.grep max, fs.tail lines
constexpr size_t kMaxPatterns = 64;
constexpr size_t kMaxPattern = 4096;
constexpr size_t kTailScan = 8 << 20;       // fs.tail reads back at most this far

std::string shown(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > kShownLine) {
    line.resize(kShownLine);
    // Do not leave half a UTF-8 sequence at the cut.
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
    if (!line.empty() && (static_cast<unsigned char>(line.back()) & 0x80)) line.pop_back();
    line += "…";
  }
  return line;
}

void lower_ascii(std::string& s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
}

int digits(const std::string& s, size_t at, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[at + i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// A timestamp at the start of a log line ("2026-12-01T10:00:00", "[2026-12-01 10:00:00,123]",
// with an optional Z or ±HH:MM offset; local time otherwise), as epoch seconds.
std::optional<int64_t> line_time(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && i < 4 && (s[i] == '[' || s[i] == ' ' || s[i] == '(')) ++i;
  if (s.size() < i + 19) return std::nullopt;
  if (s[i + 4] != '-' || s[i + 7] != '-' || (s[i + 10] != 'T' && s[i + 10] != ' ') ||
      s[i + 13] != ':' || s[i + 16] != ':')
    return std::nullopt;
  int y = digits(s, i, 4), mo = digits(s, i + 5, 2), d = digits(s, i + 8, 2),
      h = digits(s, i + 11, 2), mi = digits(s, i + 14, 2), se = digits(s, i + 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      se < 0 || se > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  size_t j = i + 19;
  while (j < s.size() && (s[j] == '.' || s[j] == ',' || (s[j] >= '0' && s[j] <= '9')) && j < i + 29) ++j;
  if (j < s.size() && s[j] == 'Z') return static_cast<int64_t>(timegm(&tm));
  if (j + 5 < s.size() + 0 && (s[j] == '+' || s[j] == '-')) {
    int oh = digits(s, j + 1, 2);
    size_t k = j + 3;
    if (k < s.size() && s[k] == ':') ++k;
    int om = k + 2 <= s.size() ? digits(s, k, 2) : -1;
    if (oh >= 0 && om >= 0) {
      int64_t off = (oh * 60 + om) * 60;
      return static_cast<int64_t>(timegm(&tm)) - (s[j] == '+' ? off : -off);
    }
  }
  tm.tm_isdst = -1;
  return static_cast<int64_t>(mktime(&tm));
}

// since = "15m" (a duration back from now) or a timestamp like line_time() reads.
std::optional<int64_t> since_cutoff(const Args& a) {
  if (!a.has("since")) return std::nullopt;
  const json& v = a.at("since");
  if (!v.is_string()) bad_arg(a, "since", "a duration like \"15m\" or a timestamp like \"2026-12-01T10:00:00Z\" expected");
  const std::string& s = v.get_ref<const std::string&>();
  if (auto t = line_time(s)) return t;
  auto d = parse_duration(s);
  if (!d || d->count() < 0)
    bad_arg(a, "since", "a duration like \"15m\" or a timestamp like \"2026-12-01T10:00:00Z\" expected, got \"" + s.substr(0, 64) + "\"");
  return (now_epoch_ms() - d->count()) / 1000;
}

// Counts the lines matching each fixed-string pattern, keeping the last `max` matching lines.
class Grep {
 public:
  Grep(std::vector<std::string> patterns, bool icase, size_t max, std::optional<int64_t> since)
      : patterns_(std::move(patterns)), icase_(icase), max_(max), since_(since) {
    for (auto& p : patterns_) {
      if (icase_) lower_ascii(p);
      keep_ = std::max(keep_, p.size());
    }
    counts_.assign(patterns_.size(), 0);
    hit_.assign(patterns_.size(), false);
  }

  void feed(const char* p, size_t n) {
    while (n > 0) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
      size_t take = nl ? static_cast<size_t>(nl - p) : n;
      add(p, take);
      if (nl) {
        end_line();
        take += 1;
      }
      p += take;
      n -= take;
    }
  }
  void finish() {
    if (started_) end_line();
  }

  json result() const {
    json counts = json::object();
    for (size_t i = 0; i < patterns_.size(); ++i) counts[original_[i]] = counts_[i];
    json lines = json::array();
    for (const auto& l : last_) lines.push_back(l);
    return json{{"count", count_}, {"counts", counts}, {"lines", lines}, {"scanned", scanned_}};
  }
  void set_originals(std::vector<std::string> o) { original_ = std::move(o); }

 private:
  void add(const char* p, size_t n) {
    started_ = true;
    if (shown_.size() < kShownLine + 8) shown_.append(p, std::min(n, kShownLine + 8 - shown_.size()));
    window_.append(p, n);
    if (window_.size() > kScanWindow) {
      scan();
      // Keep what a match crossing into the next part needs.
      size_t keep = keep_ > 0 ? keep_ - 1 : 0;
      window_.erase(0, window_.size() - std::min(window_.size(), keep));
    }
  }
  void scan() {
    if (icase_) lower_ascii(window_);
    for (size_t i = 0; i < patterns_.size(); ++i)
      if (!hit_[i] && window_.find(patterns_[i]) != std::string::npos) hit_[i] = true;
  }
  void end_line() {
    scan();
    ++scanned_;
    bool in = true;
    if (since_) {
      if (auto t = line_time(shown_)) last_time_ = t;
      // Lines before the first timestamp, and continuation lines of old entries, are outside.
      in = last_time_ && *last_time_ >= *since_;
    }
    bool any = false;
    for (size_t i = 0; i < patterns_.size(); ++i) {
      if (hit_[i] && in) {
        ++counts_[i];
        any = true;
      }
      hit_[i] = false;
    }
    if (any) {
      ++count_;
      if (max_ > 0) {
        last_.push_back(shown(std::move(shown_)));
        if (last_.size() > max_) last_.pop_front();
      }
    }
    shown_.clear();
    window_.clear();
    started_ = false;
  }

  std::vector<std::string> patterns_, original_;
  bool icase_;
  size_t max_;
  std::optional<int64_t> since_, last_time_;
  size_t keep_ = 0;
  std::vector<int64_t> counts_;
  std::vector<bool> hit_;
  std::deque<std::string> last_;
  std::string shown_, window_;
  bool started_ = false;
  int64_t count_ = 0, scanned_ = 0;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Opens a regular file (or a FIFO-free special such as /proc) for reading, without blocking.
int open_log(const std::string& effect, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw EffectError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
      S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    ::close(fd);
    throw EffectError(effect + ": " + path + " is not a regular file");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::vector<std::string> grep_patterns(const Args& a) {
  std::vector<std::string> pats = a.strings("patterns");
  if (pats.empty()) bad_arg(a, "patterns", "at least one pattern expected");
  if (pats.size() > kMaxPatterns) bad_arg(a, "patterns", "at most " + std::to_string(kMaxPatterns) + " patterns");
  for (const auto& p : pats) {
    if (p.empty()) bad_arg(a, "patterns", "an empty pattern matches every line");
    if (p.size() > kMaxPattern) bad_arg(a, "patterns", "a pattern is longer than " + std::to_string(kMaxPattern) + " bytes");
  }
  return pats;
}

size_t bounded_count(const Args& a, const std::string& name, int64_t def) {
  int64_t n = a.integer_or(name, def);
  if (n < 0 || n > kMaxLines) bad_arg(a, name, "0 to " + std::to_string(kMaxLines) + " expected, got " + std::to_string(n));
  return static_cast<size_t>(n);
}

json grep_text(const Args& a, const std::string& text) {
  auto pats = grep_patterns(a);
  Grep g(pats, a.boolean("ignore_case"), bounded_count(a, "max", 20), since_cutoff(a));
  g.set_originals(pats);
  g.feed(text.data(), text.size());
  g.finish();
  return g.result();
}

json grep_file(EffectContext& ctx, const Args& a) {
  auto pats = grep_patterns(a);
  Grep g(pats, a.boolean("ignore_case"), bounded_count(a, "max", 20), since_cutoff(a));
  g.set_originals(pats);
  std::string path = a.str("path");
  Fd f{open_log("fs.grep", path)};
  std::string buf(kChunk, '\0');
  int64_t bytes = 0;
  for (;;) {
    ctx.check_interrupt();
    ssize_t n = ::read(f.fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw EffectError("cannot read " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    bytes += n;
    g.feed(buf.data(), static_cast<size_t>(n));
  }
  g.finish();
  json r = g.result();
  r["bytes"] = bytes;
  return r;
}

// The last `n` lines of a text (a trailing newline does not make an empty last line).
json tail_text(const std::string& text, size_t n, bool cut) {
  std::deque<std::string> out;
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  while (out.size() < n && end > 0) {
    size_t nl = text.rfind('\n', end - 1);
    size_t start = nl == std::string::npos ? 0 : nl + 1;
    out.push_front(shown(text.substr(start, end - start)));
    if (nl == std::string::npos) break;
    end = nl;
  }
  if (end == 0 && text.size() > 0 && text[0] == '\n' && out.size() < n) out.push_front("");
  json lines = json::array();
  for (auto& l : out) lines.push_back(std::move(l));
  json r{{"lines", lines}};
  if (cut) r["truncated"] = true;
  return r;
}

json tail_file(EffectContext& ctx, const Args& a) {
  size_t want = bounded_count(a, "lines", 10);
  std::string path = a.str("path");
  Fd f{open_log("fs.tail", path)};
  off_t size = ::lseek(f.fd, 0, SEEK_END);
  if (size < 0) throw EffectError("cannot seek in " + path + ": " + std::strerror(errno));
  // Read backwards until the text holds `want` complete lines, or kTailScan bytes were read.
  std::string text;
  off_t pos = size;
  size_t newlines = 0;
  bool cut = false;
  while (pos > 0 && want > 0) {
    ctx.check_interrupt();
    if (text.size() >= kTailScan) {
      cut = true;
      break;
    }
    size_t len = static_cast<size_t>(std::min<off_t>(pos, static_cast<off_t>(kChunk)));
    std::string chunk(len, '\0');
    size_t got = 0;
    while (got < len) {
      ssize_t n = ::pread(f.fd, chunk.data() + got, len - got, pos - static_cast<off_t>(len) + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw EffectError("cannot read " + path + ": " + (n < 0 ? std::strerror(errno) : "file shrank"));
      got += static_cast<size_t>(n);
    }
    pos -= static_cast<off_t>(len);
    newlines += static_cast<size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
    text.insert(0, chunk);
    // A trailing newline ends the last line; `want` lines need `want` more before them.
    size_t needed = want + (text.back() == '\n' ? 1 : 0);
    if (newlines >= needed) break;
  }
  if (cut) {
    // The first line read is only the end of a longer one: drop it unless it is all we have.
    size_t nl = text.find('\n');
    if (nl != std::string::npos && nl + 1 < text.size()) text.erase(0, nl + 1);
  }
  json r = tail_text(text, want, cut);
  r["size"] = static_cast<int64_t>(size);
  return r;
}

// In a dry-run, a log a planned change touched answers from the prediction.
json predicted_log(EffectContext& ctx, const std::string& probe, const Args& a,
                   json (*answer)(const Args&, const std::string&)) {
  json content = fs_planned_text(ctx, probe, a.str("path"));
  if (content.is_string()) return answer(a, content.get_ref<const std::string&>());
  return content;  // null: not touched (read the file); an unknown otherwise
}

}  // namespace

void register_fs_logs(Registry& r) {
  {
    Effect e;
    e.name = "fs.grep";
    e.summary = "Count the lines of a file (a log of any size) that contain given strings, keeping the last matches";
    e.args = {req("path", ArgType::Path, "the file"),
              req("patterns", ArgType::List, "fixed strings (not regular expressions); a line matches when it contains one"),
              opt("max", ArgType::Int, "how many of the last matching lines to return (0 to 10000)", 20),
              opt("since", ArgType::Any,
                  "only lines stamped at or after this: a duration back from now (\"15m\") or a "
                  "timestamp (\"2026-12-01T10:00:00Z\"); a line's stamp is an ISO date-time at its "
                  "start, lines without one belong to the entry above"),
              opt("ignore_case", ArgType::Bool, "match ASCII letters regardless of case", false)};
    e.positional = {"path", "patterns"};
    e.returns =
        "{ count = matching lines, counts = { [pattern] = lines containing it }, lines = { the "
        "last max matching lines, each cut at 4 KiB }, scanned = lines read, bytes }";
    e.results = {{"count", "integer", "matching lines"}, {"counts", "map", "pattern → lines containing it"}, {"lines", "list", "the last max matching lines, each cut at 4 KiB"}, {"scanned", "integer", "lines read"}, {"bytes", "integer", "bytes read"}};
    e.describe = [](const Args& a) {
      auto pats = a.strings("patterns");
      std::string list;
      for (size_t i = 0; i < pats.size() && i < 4; ++i) list += (i ? ", " : "") + ("\"" + pats[i] + "\"");
      if (pats.size() > 4) list += ", …";
      return "grep " + a.str("path") + " for " + list +
             (a.has("since") && a.at("since").is_string() ? " since " + a.at("since").get<std::string>() : "");
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json { return grep_file(ctx, a); };
    e.planned = [](const Args& a, const json&) -> json {
      json counts = json::object();
      for (const auto& p : a.strings("patterns")) counts[p] = 0;
      return json{{"count", 0}, {"counts", counts}, {"lines", json::array()}, {"scanned", 0}};
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      return predicted_log(ctx, "fs.grep", a, grep_text);
    };
    add(r, std::move(e));
  }
  {
    Effect e;
    e.name = "fs.tail";
    e.summary = "The last lines of a file (a log of any size), read from its end";
    e.args = {req("path", ArgType::Path, "the file"),
              opt("lines", ArgType::Int, "how many lines (0 to 10000)", 10)};
    e.positional = {"path", "lines"};
    e.returns = "{ lines = { ... } (each cut at 4 KiB), size = bytes in the file, truncated = true when the lines were longer than 8 MiB together }";
    e.results = {{"lines", "list", "the lines, each cut at 4 KiB"}, {"size", "integer", "bytes in the file"}, {"truncated", "boolean", "true when the lines were longer than 8 MiB together"}};
    e.describe = [](const Args& a) {
      return "last " + std::to_string(a.integer_or("lines", 10)) + " lines of " + a.str("path");
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json { return tail_file(ctx, a); };
    e.planned = [](const Args&, const json&) -> json { return json{{"lines", json::array()}, {"size", 0}}; };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      return predicted_log(ctx, "fs.tail", a, [](const Args& args, const std::string& text) -> json {
        json r = tail_text(text, bounded_count(args, "lines", 10), false);
        r["size"] = static_cast<int64_t>(text.size());
        return r;
      });
    };
    add(r, std::move(e));
  }
}

}  // namespace rb
