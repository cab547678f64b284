// A real redis-server for tests: 127.0.0.1 on a free port, no persistence, its files in a temp
// dir, optionally with `requirepass`; killed at destruction. And the test's own client, to set up
// and look at the keyspace independently of the code under test.
#pragma once
#include <hiredis/hiredis.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/support.h"

namespace rb::test {

class RedisServer {
 public:
  // Throws std::runtime_error with the server's log when it does not accept connections in 10 s.
  explicit RedisServer(const std::string& password = "");
  int port() const { return port_; }
  // redis://[userinfo@]127.0.0.1:<port>/<db>
  std::string url(int db = 0, const std::string& userinfo = "") const;
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Child> child_;
};

class RedisClient {
 public:
  explicit RedisClient(int port, const std::string& password = "");
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  struct Free {
    void operator()(redisReply* r) const { freeReplyObject(r); }
  };
  using Reply = std::unique_ptr<redisReply, Free>;
  Reply run(const std::vector<std::string>& argv);
  // An integer reply, or -1 for any other kind.
  long long integer(const std::vector<std::string>& argv);
  // SETs prefix0..prefix<n-1> = v0.. in one round trip.
  void fill(const std::string& prefix, int n);
  void set(const std::string& k, const std::string& v = "x") { run({"SET", k, v}); }
  long long dbsize() { return integer({"DBSIZE"}); }
  long long exists(const std::string& k) { return integer({"EXISTS", k}); }
  // The value of a string key, or "(nil)".
  std::string get(const std::string& k);
  // Every key with its type, value (for strings) and whether it expires: the keyspace's state.
  std::map<std::string, std::string> dump();

 private:
  redisContext* c_ = nullptr;
};

}  // namespace rb::test
