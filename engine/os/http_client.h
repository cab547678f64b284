// HTTP over libcurl. One request per call; RAII for the easy handle; the poll callback lets the
// caller stop a transfer for Ctrl-C or a deadline.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/duration.h"

namespace rb::os {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;
  Millis timeout{30'000};
  Millis connect_timeout{10'000};
  bool follow_redirects = true;
  bool insecure = false;
  // The largest body kept; a longer answer (announced or as it streams) stops the transfer.
  uint64_t max_body = 16u << 20;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  Millis elapsed{0};
  std::string error;  // transport error (connection refused, timeout); empty on any HTTP answer
  bool timed_out = false;
  bool too_large = false;  // the body went past max_body: `error` says so, `body` is partial
};

using HttpPoll = std::function<void()>;

HttpResponse http_perform(const HttpRequest& req, const HttpPoll& poll = nullptr);

}  // namespace rb::os
