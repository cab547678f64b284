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

// Many GETs of one URL, `concurrency` at a time, through one libcurl multi handle: until `n`
// answers (or transport failures) were counted, or `duration` passed when n is 0. Bodies are
// read and dropped (each at most max_body). The poll is called every few milliseconds and may
// throw (Ctrl-C, the deadline): the transfers are cleaned up and the exception goes on.
struct SampleRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t n = 0;
  Millis duration{0};
  int concurrency = 1;
  Millis timeout{10'000};  // per request
  uint64_t max_body = 1u << 20;
  bool insecure = false;
};
struct SampleResult {
  std::vector<long> statuses;   // one per request; 0 for a transport failure
  std::vector<double> times_ms; // the same order
  std::string last_error;       // the last transport error, if any
  Millis elapsed{0};
};
SampleResult http_sample(const SampleRequest& req, const HttpPoll& poll = nullptr);

// One mail through SMTP (libcurl): `message` is the whole RFC 5322 text (headers, blank line,
// body), CRLF line ends. tls: "none", "try" (STARTTLS when offered) or "required".
struct MailRequest {
  std::string url;  // smtp://host:port or smtps://host:port
  std::string from;
  std::vector<std::string> to;
  std::string message;
  std::string username, password;
  std::string tls = "try";
  Millis timeout{30'000};
  bool insecure = false;
};
struct MailResult {
  std::string error;  // empty when the server accepted the mail
  long code = 0;      // the last SMTP reply code
  Millis elapsed{0};
};
MailResult smtp_send(const MailRequest& req, const HttpPoll& poll = nullptr);

}  // namespace rb::os
