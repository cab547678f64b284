#include "cli/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <toml.hpp>

#include "cli/json_out.h"
#include "core/duration.h"
#include "core/error.h"
#include "core/settings.h"
#include "core/strings.h"
#include "journal/journal.h"

namespace rb::cli {
namespace {

constexpr size_t kMaxConfigBytes = 1u << 20;
constexpr int kMaxNesting = 32;

struct Key {
  const char* name;
  const char* env;
  const char* doc;
  bool secret;
};

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      {"journal", "RUNBOOK_JOURNAL", "the journal database", false},
      {"artifacts", "RUNBOOK_ARTIFACTS", "where runs keep what they replace (default: beside the journal)", false},
      {"color", "RUNBOOK_COLOR", "auto, always or never (NO_COLOR=1 and --no-color mean never)", false},
      {"wait_lock", "RUNBOOK_WAIT_LOCK", "how long exec and resume wait for another run's lock (default: refuse at once)", false},
      {"notify.webhook", "RUNBOOK_NOTIFY_WEBHOOK", "notify.webhook's url when a runbook gives none", true},
      {"notify.smtp", "RUNBOOK_NOTIFY_SMTP", "notify.email's smtp when a runbook gives none", true},
      {"notify.from", "RUNBOOK_NOTIFY_FROM", "notify.email's from when a runbook gives none", false},
      {"notify.to", "RUNBOOK_NOTIFY_TO", "notify.email's to when a runbook gives none (comma-separated)", false},
  };
  return k;
}

const Key* find_key(const std::string& name) {
  for (const auto& k : keys())
    if (name == k.name) return &k;
  return nullptr;
}

size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& name) {
  std::string best;
  size_t bd = 3;
  for (const auto& k : keys()) {
    size_t d = distance(name, k.name);
    if (d < bd) bd = d, best = k.name;
  }
  return best;
}

std::string home_path(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0)
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + p.substr(1);
  return p;
}

// The default artifacts root: beside the journal, as the run derives it (lua/runbook.cc).
Setting artifacts_beside(const std::string& journal) {
  std::string dir = journal.find('/') == std::string::npos ? "." : journal.substr(0, journal.rfind('/'));
  return {dir + "/artifacts", "default: beside the journal", false};
}

std::string default_file() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/runbook/config.toml";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/runbook/config.toml";
  return "";
}

// toml11's parser recurses on nested arrays and inline tables: refuse deep nesting before it.
int nesting_of(const std::string& t) {
  int depth = 0, worst = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '#') {
      while (i < t.size() && t[i] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      bool triple = t.compare(i, 3, std::string(3, c)) == 0;
      size_t j = i + (triple ? 3 : 1);
      while (j < t.size()) {
        if (c == '"' && t[j] == '\\') {
          j += 2;
          continue;
        }
        if (triple ? t.compare(j, 3, std::string(3, c)) == 0 : t[j] == c) break;
        if (!triple && t[j] == '\n') break;
        ++j;
      }
      i = j + (triple ? 2 : 0);
    } else if (c == '[' || c == '{') {
      worst = std::max(worst, ++depth);
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    }
  }
  return worst;
}

std::string where(const std::string& file, const toml::value& v) {
  auto loc = v.location();
  return file + ":" + std::to_string(loc.line());
}

[[noreturn]] void bad(const std::string& at, const std::string& msg) {
  throw UsageError(at + ": " + msg + " (fix the config file, or run with RUNBOOK_CONFIG=none to ignore it)");
}

// A file value, checked for its key.
std::string file_value(const std::string& key, const toml::value& v, const std::string& at) {
  auto want_string = [&]() -> std::string {
    if (!v.is_string()) bad(at, key + " must be a string");
    std::string s = v.as_string().str;
    if (s.empty()) bad(at, key + " is empty");
    if (s.size() > 4096) bad(at, key + " is longer than 4096 bytes");
    return s;
  };
  if (key == "notify.to") {
    if (v.is_array()) {
      std::string out;
      for (const auto& x : v.as_array()) {
        if (!x.is_string()) bad(at, "notify.to must be a string or a list of strings");
        out += (out.empty() ? "" : ",") + x.as_string().str;
      }
      if (out.empty()) bad(at, "notify.to is empty");
      return out;
    }
    return want_string();
  }
  std::string s = want_string();
  if (key == "journal" || key == "artifacts") return home_path(s);
  if (key == "color" && s != "auto" && s != "always" && s != "never")
    bad(at, "color is auto, always or never, not '" + truncate(s, 40) + "'");
  if (key == "wait_lock") {
    auto d = parse_duration(s);
    if (!d || d->count() <= 0) bad(at, "wait_lock is a duration like 30s or 5m, not '" + truncate(s, 40) + "'");
  }
  if (key == "notify.webhook" && s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0) bad(at, "notify.webhook is not an http(s) URL");
  if (key == "notify.smtp" && s.rfind("smtp://", 0) != 0 && s.rfind("smtps://", 0) != 0)
    bad(at, "notify.smtp is smtp://host:port or smtps://host:port");
  return s;
}

void read_file(Config& c) {
  struct stat st {};
  if (c.file.empty() || ::stat(c.file.c_str(), &st) != 0) return;  // no file: defaults
  if (!S_ISREG(st.st_mode)) bad(c.file, "not a regular file");
  if (static_cast<size_t>(st.st_size) > kMaxConfigBytes) bad(c.file, "larger than 1 MiB");
  std::ifstream in(c.file, std::ios::binary);
  if (!in) bad(c.file, "cannot be read");
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) bad(c.file, "larger than 1 MiB");
  if (nesting_of(text) > kMaxNesting) bad(c.file, "arrays or tables nested deeper than 32 levels");
  toml::value data;
  try {
    std::istringstream is(text);
    data = toml::parse(is, c.file);
  } catch (const toml::syntax_error& e) {
    // toml11's message is several lines with the file:line and a caret; keep its first lines.
    std::string msg = e.what();
    auto loc = e.location();
    throw UsageError(c.file + ":" + std::to_string(loc.line()) + ": not valid TOML: " + truncate(trim(msg), 600) +
                     "\n(fix the config file, or run with RUNBOOK_CONFIG=none to ignore it)");
  } catch (const std::exception& e) {
    bad(c.file, std::string("not valid TOML: ") + truncate(e.what(), 300));
  }
  c.file_read = true;
  if (!data.is_table()) return;
  for (const auto& [k, v] : data.as_table()) {
    if (k == "notify" && v.is_table()) {
      for (const auto& [nk, nv] : v.as_table()) {
        std::string full = "notify." + nk;
        if (!find_key(full)) {
          std::string n = nearest(full);
          c.warnings.push_back(where(c.file, nv) + ": unknown key '" + full + "' ignored" +
                               (n.empty() ? "" : " (did you mean '" + n + "'?)"));
          continue;
        }
        c.values[full] = {file_value(full, nv, where(c.file, nv)), "file " + where(c.file, nv), find_key(full)->secret};
      }
      continue;
    }
    if (!find_key(k) || k.rfind("notify.", 0) == 0) {
      std::string n = nearest(k);
      c.warnings.push_back(where(c.file, v) + ": unknown key '" + k + "' ignored" +
                           (n.empty() ? "" : " (did you mean '" + n + "'?)"));
      continue;
    }
    c.values[k] = {file_value(k, v, where(c.file, v)), "file " + where(c.file, v), false};
  }
}

// What a secret value shows: a URL's origin, nothing of its path or credentials.
std::string shown(const Setting& s) {
  if (!s.secret || s.value.empty()) return s.value;
  auto scheme = s.value.find("://");
  if (scheme == std::string::npos) return "***";
  auto end = s.value.find_first_of("/?#", scheme + 3);
  std::string host = s.value.substr(scheme + 3, end == std::string::npos ? std::string::npos : end - scheme - 3);
  if (auto at = host.rfind('@'); at != std::string::npos) host = "***@" + host.substr(at + 1);
  return s.value.substr(0, scheme + 3) + host + (end == std::string::npos ? "" : "/…");
}

}  // namespace

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out;
    for (const auto& x : keys()) out.push_back(x.name);
    return out;
  }();
  return k;
}

Config load_config() {
  Config c;
  const char* explicit_path = std::getenv("RUNBOOK_CONFIG");
  if (explicit_path && std::string(explicit_path) == "none") c.file = "";
  else if (explicit_path && *explicit_path) c.file = explicit_path;
  else c.file = default_file();
  for (const auto& k : keys()) c.values[k.name] = {"", "default", k.secret};
  read_file(c);
  // The environment wins over the file.
  for (const auto& k : keys()) {
    const char* v = std::getenv(k.env);
    if (!v || !*v) continue;
    std::string value = v;
    if (std::string(k.name) == "color" && value != "auto" && value != "always" && value != "never")
      throw UsageError(std::string(k.env) + " is auto, always or never, not '" + truncate(value, 40) + "'");
    if (std::string(k.name) == "wait_lock") {
      auto d = parse_duration(value);
      if (!d || d->count() <= 0)
        throw UsageError(std::string(k.env) + " is a duration like 30s or 5m, not '" + truncate(value, 40) + "'");
    }
    c.values[k.name] = {value, std::string("environment ") + k.env, k.secret};
  }
  if (const char* n = std::getenv("NO_COLOR"); n && *n) c.values["color"] = {"never", "environment NO_COLOR", false};
  // The defaults that depend on others.
  Setting& j = c.values["journal"];
  if (j.value.empty()) j.value = Journal::default_path();
  Setting& a = c.values["artifacts"];
  if (a.value.empty()) a = artifacts_beside(j.value);
  if (c.values["color"].value.empty()) c.values["color"].value = "auto";
  return c;
}

void apply_flag(Config& c, const std::string& key, const std::string& value, const std::string& flag) {
  if (value.empty()) return;
  bool secret = c.values.count(key) ? c.values[key].secret : false;
  bool artifacts_followed = key == "journal" && c.values["artifacts"].source.rfind("default", 0) == 0;
  c.values[key] = {value, "flag " + flag, secret};
  if (artifacts_followed) c.values["artifacts"] = artifacts_beside(value);
}

void install_settings(const Config& c) {
  for (const auto& [k, s] : c.values)
    if (!s.value.empty() && s.source.rfind("default", 0) != 0) set_setting(k, s.value);
}

int cmd_config(const Config& c, bool as_json) {
  if (as_json) {
    json values = json::array();
    for (const auto& k : keys()) {
      const Setting& s = c.values.at(k.name);
      values.push_back({{"key", k.name}, {"value", shown(s)}, {"source", s.source}, {"env", k.env}, {"doc", k.doc}});
    }
    print_typed("config", json{{"file", c.file}, {"file_read", c.file_read}, {"values", values}, {"warnings", c.warnings}});
    return 0;
  }
  std::printf("config file: %s (%s)\n", c.file.empty() ? "none (RUNBOOK_CONFIG=none)" : c.file.c_str(),
              c.file.empty() ? "not read" : c.file_read ? "read" : "absent: defaults");
  for (const auto& k : keys()) {
    const Setting& s = c.values.at(k.name);
    std::printf("%-15s = %-40s  (%s)\n", k.name, s.value.empty() ? "(unset)" : shown(s).c_str(), s.source.c_str());
  }
  for (const auto& w : c.warnings) std::printf("warning: %s\n", w.c_str());
  std::printf("\nprecedence: flag, then environment, then the file, then the default\n");
  return 0;
}

}  // namespace rb::cli
