// HTTP over libcurl. One request per call; RAII for the easy handle; the poll callback lets the
// caller stop a transfer for Ctrl-C or a deadline.
#pragma once
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
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  Millis elapsed{0};
  std::string error;  // transport error (connection refused, timeout); empty on any HTTP answer
  bool timed_out = false;
};

using HttpPoll = std::function<void()>;

HttpResponse http_perform(const HttpRequest& req, const HttpPoll& poll = nullptr);

}  // namespace rb::os
