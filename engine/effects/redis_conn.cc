#include "effects/redis_conn.h"

#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

#include "core/error.h"
#include "core/strings.h"
#include "effects/util.h"

namespace rb::redis {
namespace {

timeval to_timeval(Millis t) {
  // hiredis treats a zero timeout as "none": the smallest real one stands in for it.
  int64_t ms = std::max<int64_t>(1, t.count());
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

// The "[user]:password" part of a URL, if any (the text between :// and the last @ before the path).
std::string userinfo(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = url.substr(scheme + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  auto at = authority.rfind('@');
  return at == std::string::npos ? "" : authority.substr(0, at);
}

std::string utf8(const char* p, size_t n) {
  json j = std::string(p, n);
  return json::parse(j.dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

json scalar(const std::string& v) {
  if (v.empty()) return v;
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(v.c_str(), &end, 10);
  if (errno == 0 && *end == '\0') return static_cast<int64_t>(i);
  double d = std::strtod(v.c_str(), &end);
  if (*end == '\0' && (std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-')) return d;
  return v;
}

}  // namespace

std::string Url::where() const { return host + ":" + std::to_string(port) + "/" + std::to_string(db); }

Url parse_url(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind("rediss://", 0) == 0)
    throw std::invalid_argument("TLS (rediss://) is not supported");
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("redis://[user:password@]host:port/db expected");
  Url u;
  std::string rest = url.substr(scheme.size());
  auto q = rest.find('?');
  if (q != std::string::npos) rest = rest.substr(0, q);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash + 1);
  auto at = authority.rfind('@');
  if (at != std::string::npos) {
    std::string info = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = info.find(':');
    if (colon == std::string::npos) {
      // redis://secret@host is how some tools write a password alone.
      u.password = percent_decode(info);
    } else {
      u.user = percent_decode(info.substr(0, colon));
      u.password = percent_decode(info.substr(colon + 1));
    }
  }
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) throw std::invalid_argument("unclosed [ in the host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) u.host = "127.0.0.1";
  auto number = [](const std::string& s, const char* what, int max) {
    if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit))
      throw std::invalid_argument(std::string(what) + " must be a number");
    int n = std::stoi(s);
    if (n > max) throw std::invalid_argument(std::string(what) + " out of range");
    return n;
  };
  if (!port.empty()) u.port = number(port, "the port", 65535);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (!path.empty()) u.db = number(path, "the database (after /)", 1 << 20);
  return u;
}

std::vector<std::string> url_secrets(const std::string& url) {
  std::string info = userinfo(url);
  if (info.empty()) return {};
  auto colon = info.find(':');
  std::string raw = colon == std::string::npos ? info : info.substr(colon + 1);
  if (raw.empty()) return {};
  std::vector<std::string> out{raw};
  std::string decoded = percent_decode(raw);
  if (decoded != raw) out.push_back(decoded);
  return out;
}

Conn::Conn(const Url& url, Millis timeout) : url_(url) {
  c_ = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(timeout));
  if (!c_) throw EffectError("cannot connect to " + url.host + ":" + std::to_string(url.port) + ": out of memory");
  if (c_->err) {
    std::string why = c_->errstr;
    redisFree(c_);
    c_ = nullptr;
    if (why.find("Operation now in progress") != std::string::npos || why.find("timed out") != std::string::npos)
      why = "no answer within " + format_duration(timeout);
    throw EffectError("cannot connect to " + url.host + ":" + std::to_string(url.port) + ": " + why);
  }
  set_timeout(timeout);
  if (!url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    cmd(auth);
  }
  if (url.db != 0) cmd({"SELECT", std::to_string(url.db)});
}

Conn::~Conn() {
  if (c_) redisFree(c_);
}

void Conn::set_timeout(Millis timeout) { redisSetTimeout(c_, to_timeval(timeout)); }

Reply Conn::try_cmd(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (!r) {
    std::string why = c_->errstr;
    if (why.find("temporarily unavailable") != std::string::npos || why.find("timed out") != std::string::npos)
      why = "no answer in time";
    throw EffectError("redis " + url_.where() + ": " + argv[0] + " failed: " + why);
  }
  return Reply(r);
}

Reply Conn::cmd(const std::vector<std::string>& argv) {
  Reply r = try_cmd(argv);
  if (r->type == REDIS_REPLY_ERROR) {
    std::string msg(r->str, r->len);
    throw EffectError("redis " + url_.where() + ": " + argv[0] + " failed: " + utf8(msg.data(), msg.size()));
  }
  return r;
}

std::string text_of(const redisReply* r) {
  if (!r || !r->str) return "";
  return utf8(r->str, r->len);
}

json parse_info(const std::string& info) {
  json out = json::object();
  for (const auto& raw : split(info, '\n')) {
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    bool keyspace = key.size() > 2 && key.rfind("db", 0) == 0 &&
                    std::all_of(key.begin() + 2, key.end(), ::isdigit);
    if (keyspace) {
      json fields = json::object();
      for (const auto& kv : split(value, ',')) {
        auto eq = kv.find('=');
        if (eq != std::string::npos) fields[kv.substr(0, eq)] = scalar(kv.substr(eq + 1));
      }
      out[key] = fields;
    } else {
      out[key] = scalar(value);
    }
  }
  return out;
}

json keyspace_counts(Conn& c) {
  Reply r = c.cmd({"INFO", "keyspace"});
  json info = parse_info(text_of(r.get()));
  json out = json::object();
  for (auto it = info.begin(); it != info.end(); ++it)
    if (it->is_object() && it->contains("keys")) out[it.key()] = (*it)["keys"];
  return out;
}

}  // namespace rb::redis
