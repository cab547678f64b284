#include "effects/redis_conn.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/error.h"
#include "core/strings.h"
#include "effects/util.h"

namespace rb::redis {
namespace {

// Redis' limit on a value (proto-max-bulk-len) is 512 MiB; a little over it for the framing.
constexpr size_t kMaxAnswer = (512u << 20) + (64u << 10);

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

Conn::Conn(EffectContext& ctx, const Url& url, Millis timeout) : ctx_(ctx), url_(url) {
  start_budget(timeout);
  std::string where = url.host + ":" + std::to_string(url.port);
  if (budget_.count() <= 0) ctx_.check_interrupt();
  // Non-blocking from the start: hiredis' own timeouts bound each read, not the call, so a
  // server trickling a byte a second would hold a blocking context for ever. Every wait is ours.
  c_ = redisConnectNonBlock(url.host.c_str(), url.port);
  if (!c_) throw EffectError("cannot connect to " + where + ": out of memory");
  if (c_->err) {
    std::string why = c_->errstr;
    close();
    throw EffectError("cannot connect to " + where + ": " + why);
  }
  if (!wait(POLLOUT)) {
    close();
    throw EffectError("cannot connect to " + where + ": no answer within " + budget_text());
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c_->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    close();
    throw EffectError("cannot connect to " + where + ": " + std::strerror(err));
  }
  c_->flags |= REDIS_CONNECTED;
  if (!url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    cmd(auth);
  }
  if (url.db != 0) cmd({"SELECT", std::to_string(url.db)});
}

Conn::~Conn() { close(); }

void Conn::close() {
  if (c_) redisFree(c_);
  c_ = nullptr;
}

void Conn::start_budget(Millis timeout) {
  budget_ = ctx_.bound(timeout);
  step_bound_ = budget_ < timeout;
  until_ = std::chrono::steady_clock::now() + budget_;
}

void Conn::set_timeout(Millis timeout) {
  start_budget(timeout);
  if (budget_.count() <= 0) ctx_.check_interrupt();
}

std::string Conn::budget_text() const {
  return format_duration(std::max(Millis(0), budget_)) + (step_bound_ ? " (the step's deadline)" : "");
}

bool Conn::wait(short events) {
  for (;;) {
    ctx_.check_interrupt();
    auto left = std::chrono::duration_cast<Millis>(until_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{c_->fd, events, 0};
    // Short slices, so that Ctrl-C and the step's deadline are seen promptly.
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the read or write report it
  }
}

Reply Conn::try_cmd(const std::vector<std::string>& argv) {
  auto fail = [&](const std::string& why) -> EffectError {
    return EffectError("redis " + url_.where() + ": " + argv[0] + " failed: " + why);
  };
  if (!c_) throw fail("the connection was closed after an earlier timeout");
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(args.size()), args.data(), lens.data()) != REDIS_OK)
    throw fail(c_->errstr);
  try {
    for (int done = 0; !done;) {
      if (!wait(POLLOUT)) {
        close();
        throw fail("cannot send it within " + budget_text());
      }
      if (redisBufferWrite(c_, &done) != REDIS_OK) throw fail(c_->errstr);
    }
    size_t fed = 0;
    for (;;) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) {
        std::string why = c_->errstr;
        close();  // a protocol error leaves the stream unusable
        throw fail(why);
      }
      if (reply) return Reply(static_cast<redisReply*>(reply));
      if (!wait(POLLIN)) {
        close();  // half an answer may still come: nothing more can be read on this connection
        throw fail("no whole answer within " + budget_text());
      }
      // Read here rather than redisBufferRead, to count what the answer has cost so far.
      char buf[16 * 1024];
      ssize_t n = ::read(c_->fd, buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      std::string why = n < 0 ? std::strerror(errno) : n == 0 ? "the server closed the connection" : "";
      if (why.empty() && redisReaderFeed(c_->reader, buf, static_cast<size_t>(n)) != REDIS_OK)
        why = c_->reader->errstr;
      fed += n > 0 ? static_cast<size_t>(n) : 0;
      // Redis refuses values over 512 MiB itself: a longer answer is not one to keep in memory.
      if (why.empty() && fed > kMaxAnswer) why = "the answer is larger than " + size_text(kMaxAnswer);
      if (!why.empty()) {
        close();
        throw fail(why);
      }
    }
  } catch (const Interrupted&) {
    close();
    throw;
  } catch (const DeadlineExceeded&) {
    close();
    throw;
  }
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
