#include "os/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>

#include "core/strings.h"

namespace rb::os {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  HttpResponse* resp;
  const HttpPoll* poll;
  uint64_t max_body;
  bool head;  // a HEAD answer announces the length of a body it does not send
  std::exception_ptr stopped;
};

// Returning less than given makes libcurl stop the transfer (CURLE_WRITE_ERROR).
size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->resp->body.size() + size * n > t->max_body) {
    t->resp->too_large = true;
    return 0;
  }
  t->resp->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::string value = trim(line.substr(colon + 1));
    // An announced length over the cap ends the transfer before any of the body is read.
    if (name == "content-length" && !t->head && value.size() < 20 && !value.empty() &&
        std::all_of(value.begin(), value.end(), ::isdigit) && std::stoull(value) > t->max_body) {
      t->resp->too_large = true;
      return 0;
    }
    t->resp->headers[name] = std::move(value);
  } else if (line.rfind("HTTP/", 0) == 0) {
    t->resp->headers.clear();  // a new response (after a redirect or 100-continue)
  }
  return size * n;
}

// libcurl calls this often during a transfer. The caller's poll may throw; the exception is
// kept and re-thrown after curl_easy_perform returns, never thrown through C frames.
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->poll || !*t->poll) return 0;
  try {
    (*t->poll)();
  } catch (...) {
    t->stopped = std::current_exception();
    return 1;
  }
  return 0;
}

}  // namespace

HttpResponse http_perform(const HttpRequest& req, const HttpPoll& poll) {
  global_init();
  HttpResponse resp;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
  if (!h) {
    resp.error = "cannot initialise libcurl";
    return resp;
  }
  Transfer t{&resp, &poll, req.max_body, req.method == "HEAD", nullptr};
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, req.timeout.count())));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, std::min(req.connect_timeout, req.timeout).count())));
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "runbook/0.1");
  if (req.insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (req.has_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  struct curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  if (req.has_body) list = curl_slist_append(list, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(list, &curl_slist_free_all);
  if (list) curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);

  auto t0 = std::chrono::steady_clock::now();
  CURLcode rc = curl_easy_perform(c);
  resp.elapsed =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
  if (t.stopped) std::rethrow_exception(t.stopped);
  if (resp.too_large) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    resp.error = "the answer is larger than max_body";
    return resp;
  }
  if (rc != CURLE_OK) {
    resp.error = curl_easy_strerror(rc);
    resp.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    return resp;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace rb::os
