// A Redis connection for the redis.* effects: URL parsing, connect with a timeout, AUTH and
// SELECT, and commands whose failures become EffectErrors that never carry the password.
#pragma once
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/duration.h"
#include "core/json.h"
#include "dispatch/context.h"

namespace rb::redis {

// redis://[[user]:password@]host[:port][/db]
struct Url {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user, password;
  int db = 0;
  // host:port/db, for messages (never the password).
  std::string where() const;
};

// Throws std::invalid_argument with what is wrong (the text never quotes the URL).
Url parse_url(const std::string& url);
// The password in a URL, as written and percent-decoded, for redaction. Never throws.
std::vector<std::string> url_secrets(const std::string& url);

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

class Conn {
 public:
  // Connects, authenticates and selects the URL's database, all within min(timeout, the step's
  // time left) in total; Ctrl-C stops it at once. Throws EffectError ("cannot connect to
  // 127.0.0.1:6380: Connection refused").
  Conn(EffectContext& ctx, const Url& url, Millis timeout);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // A new budget of min(timeout, the step's time left) for the following commands together
  // (one page of a SCAN walk). Until then they share what is left of the connect's.
  void set_timeout(Millis timeout);
  // Runs one command. A transport failure, no whole answer within the budget (however slowly
  // the server trickles it), or an error reply throws EffectError naming the command (its name
  // only: arguments may be values or secrets). After a timeout the connection is closed.
  Reply cmd(const std::vector<std::string>& argv);
  // Like cmd, but an error reply is returned, not thrown (to try UNLINK, then DEL).
  Reply try_cmd(const std::vector<std::string>& argv);
  const Url& url() const { return url_; }

 private:
  void start_budget(Millis timeout);
  // Waits for the socket to be ready (POLLIN/POLLOUT) until the budget ends; false then.
  bool wait(short events);
  std::string budget_text() const;
  void close();

  EffectContext& ctx_;
  Url url_;
  redisContext* c_ = nullptr;
  SteadyTime until_{};
  Millis budget_{0};
  bool step_bound_ = false;
};

// A reply's bytes as JSON-safe text (invalid UTF-8 becomes U+FFFD).
std::string text_of(const redisReply* r);
// INFO output as { field = value }; numbers as numbers, keyspace lines ("db0") as tables.
json parse_info(const std::string& info);
// Keys per database from INFO keyspace: { db0 = 12, db3 = 1 }.
json keyspace_counts(Conn& c);

}  // namespace rb::redis
