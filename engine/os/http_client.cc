#include "os/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

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

namespace {

struct SampleSlot {
  uint64_t got = 0;
  uint64_t max_body = 0;
  bool too_large = false;
};

size_t on_sample_body(char*, size_t size, size_t n, void* user) {
  auto* s = static_cast<SampleSlot*>(user);
  s->got += size * n;
  if (s->got > s->max_body) {
    s->too_large = true;
    return 0;
  }
  return size * n;
}

// Every easy handle still in the multi handle is removed and freed, also when the poll threw.
struct MultiGuard {
  CURLM* multi;
  std::vector<std::pair<CURL*, std::unique_ptr<SampleSlot>>> live;
  ~MultiGuard() {
    for (auto& [h, slot] : live) {
      curl_multi_remove_handle(multi, h);
      curl_easy_cleanup(h);
    }
    curl_multi_cleanup(multi);
  }
};

}  // namespace

SampleResult http_sample(const SampleRequest& req, const HttpPoll& poll) {
  global_init();
  SampleResult out;
  CURLM* m = curl_multi_init();
  if (!m) {
    out.last_error = "cannot initialise libcurl";
    return out;
  }
  MultiGuard guard{m, {}};
  struct curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(list, &curl_slist_free_all);
  // Whatever n says, a sample is at most a million requests (the result keeps one time each).
  constexpr int64_t kMaxRequests = 1'000'000;
  int concurrency = std::max(1, req.concurrency);
  auto t0 = std::chrono::steady_clock::now();
  int64_t started = 0;
  auto more = [&] {
    if (started >= kMaxRequests) return false;
    if (req.n > 0) return started < req.n;
    return std::chrono::steady_clock::now() - t0 < req.duration;
  };
  auto add_one = [&] {
    CURL* h = curl_easy_init();
    if (!h) throw std::runtime_error("cannot initialise libcurl");
    auto slot = std::make_unique<SampleSlot>();
    slot->max_body = req.max_body;
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, req.timeout.count())));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(1, std::min<int64_t>(req.timeout.count(), 5000))));
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sample_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, slot.get());
    curl_easy_setopt(h, CURLOPT_USERAGENT, "runbook/0.1 (sample)");
    curl_easy_setopt(h, CURLOPT_PRIVATE, slot.get());
    if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    if (req.insecure) {
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
      curl_easy_cleanup(h);
      throw std::runtime_error("cannot add a transfer to libcurl's multi handle");
    }
    guard.live.emplace_back(h, std::move(slot));
    ++started;
  };
  while (true) {
    while (static_cast<int>(guard.live.size()) < concurrency && more()) add_one();
    if (guard.live.empty()) break;
    int running = 0;
    curl_multi_perform(m, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* h = msg->easy_handle;
      CURLcode rc = msg->data.result;
      long status = 0;
      curl_off_t us = 0;
      curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
      auto it = std::find_if(guard.live.begin(), guard.live.end(), [&](auto& p) { return p.first == h; });
      bool too_large = it != guard.live.end() && it->second->too_large;
      if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      } else {
        out.last_error = too_large ? "the answer is larger than max_body" : curl_easy_strerror(rc);
      }
      out.statuses.push_back(status);
      out.times_ms.push_back(static_cast<double>(us) / 1000.0);
      curl_multi_remove_handle(m, h);
      curl_easy_cleanup(h);
      if (it != guard.live.end()) guard.live.erase(it);
    }
    if (poll) poll();
    if (!guard.live.empty()) curl_multi_poll(m, nullptr, 0, 20, nullptr);
  }
  out.elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
  return out;
}

namespace {

struct MailSource {
  const std::string* text;
  size_t at = 0;
};

size_t on_mail_read(char* buf, size_t size, size_t n, void* user) {
  auto* s = static_cast<MailSource*>(user);
  size_t left = s->text->size() - s->at;
  size_t k = std::min(left, size * n);
  std::copy_n(s->text->data() + s->at, k, buf);
  s->at += k;
  return k;
}

}  // namespace

MailResult smtp_send(const MailRequest& req, const HttpPoll& poll) {
  global_init();
  MailResult res;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
  if (!h) {
    res.error = "cannot initialise libcurl";
    return res;
  }
  CURL* c = h.get();
  Transfer t{nullptr, &poll, 0, false, nullptr};
  HttpResponse unused;
  t.resp = &unused;
  MailSource src{&req.message};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, req.timeout.count())));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, std::min<int64_t>(req.timeout.count(), 10'000))));
  std::string from = "<" + req.from + ">";
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
  struct curl_slist* rcpt = nullptr;
  for (const auto& to : req.to) rcpt = curl_slist_append(rcpt, ("<" + to + ">").c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> rcpts(rcpt, &curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, on_mail_read);
  curl_easy_setopt(c, CURLOPT_READDATA, &src);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.message.size()));
  curl_easy_setopt(c, CURLOPT_USE_SSL, req.tls == "required" ? static_cast<long>(CURLUSESSL_ALL)
                                       : req.tls == "none"   ? static_cast<long>(CURLUSESSL_NONE)
                                                             : static_cast<long>(CURLUSESSL_TRY));
  if (!req.username.empty()) curl_easy_setopt(c, CURLOPT_USERNAME, req.username.c_str());
  if (!req.password.empty()) curl_easy_setopt(c, CURLOPT_PASSWORD, req.password.c_str());
  if (req.insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  auto t0 = std::chrono::steady_clock::now();
  CURLcode rc = curl_easy_perform(c);
  res.elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
  if (t.stopped) std::rethrow_exception(t.stopped);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.code);
  if (rc != CURLE_OK) res.error = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc);
  return res;
}

}  // namespace rb::os
