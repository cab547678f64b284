#include "support/redis_server.h"

#include <sys/stat.h>

#include <stdexcept>

namespace rb::test {

RedisServer::RedisServer(const std::string& password) : port_(free_port()) {
  std::vector<std::string> argv{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", dir_.path()};
  // The password goes in a 0600 config file, not argv: the secrets tests sample every process's
  // command line and must find none, the test's own servers included.
  if (!password.empty()) {
    std::string conf = dir_ / "redis.conf";
    write_file(conf, "requirepass \"" + password + "\"\n");
    ::chmod(conf.c_str(), 0600);
    argv.insert(argv.begin() + 1, conf);
  }
  child_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{}, dir_ / "redis.log");
  if (!wait_for_port(port_, 10000))
    throw std::runtime_error("redis-server did not start (apt-get install redis-server): " +
                             read_file(dir_ / "redis.log"));
}

std::string RedisServer::url(int db, const std::string& userinfo) const {
  return "redis://" + (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + std::to_string(port_) + "/" +
         std::to_string(db);
}

RedisClient::RedisClient(int port, const std::string& password) {
  c_ = redisConnect("127.0.0.1", port);
  if (!c_ || c_->err) throw std::runtime_error("test client cannot connect");
  if (!password.empty()) run({"AUTH", password});
}

RedisClient::~RedisClient() { redisFree(c_); }

RedisClient::Reply RedisClient::run(const std::vector<std::string>& argv) {
  std::vector<const char*> a;
  std::vector<size_t> l;
  for (const auto& s : argv) {
    a.push_back(s.data());
    l.push_back(s.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(a.size()), a.data(), l.data()));
  if (!r) throw std::runtime_error("redis command failed");
  return Reply(r);
}

long long RedisClient::integer(const std::vector<std::string>& argv) {
  auto r = run(argv);
  return r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

void RedisClient::fill(const std::string& prefix, int n) {
  for (int i = 0; i < n; ++i) {
    std::string k = prefix + std::to_string(i), v = "v" + std::to_string(i);
    const char* a[] = {"SET", k.c_str(), v.c_str()};
    redisAppendCommandArgv(c_, 3, a, nullptr);
  }
  for (int i = 0; i < n; ++i) {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK) throw std::runtime_error("redis pipeline failed");
    freeReplyObject(r);
  }
}

std::string RedisClient::get(const std::string& k) {
  auto r = run({"GET", k});
  return r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "(nil)";
}

std::map<std::string, std::string> RedisClient::dump() {
  std::map<std::string, std::string> out;
  std::string cursor = "0";
  do {
    auto r = run({"SCAN", cursor, "COUNT", "1000"});
    cursor = r->element[0]->str;
    for (size_t i = 0; i < r->element[1]->elements; ++i) {
      std::string k = r->element[1]->element[i]->str;
      std::string type = run({"TYPE", k})->str;
      out[k] = type + " " + (type == "string" ? get(k) : "") + " ttl>0:" +
               std::to_string(run({"PTTL", k})->integer > 0);
    }
  } while (cursor != "0");
  return out;
}

}  // namespace rb::test
