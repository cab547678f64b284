// http.*: requests over libcurl. GET and HEAD are probes; other methods change the world unless
// readonly = true. A transport error or a status >= 400 (or not the expected one) fails the call.
#include <algorithm>
#include <cmath>
#include <thread>

#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/service_backend.h"
#include "effects/url.h"
#include "effects/util.h"
#include "os/http_client.h"

namespace rb {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = kKiB << 10, kGiB = kMiB << 10;

ArgSpec max_body_arg() {
  return opt("max_body", ArgType::Any,
             "the largest answer body kept: a size (\"64MiB\", \"512KiB\", \"1GB\") or a number of "
             "bytes; a longer answer fails the call at once",
             "16MiB");
}

// "16MiB", "16 MiB", "1.5GiB", "100kB", "2048" or 2048 (bytes).
uint64_t max_body_of(const Args& a) {
  const json& v = a.at("max_body");
  auto bad = [&] {
    bad_arg(a, "max_body", "a size like \"64MiB\" or a positive number of bytes expected, got " + v.dump());
  };
  double n = 0;
  std::string unit;
  if (v.is_number()) {
    n = v.get<double>();
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() > 32) bad();
    size_t used = 0;
    try {
      n = std::stod(s, &used);
    } catch (const std::exception&) {
      bad();
    }
    unit = trim(s.substr(used));
  } else {
    bad();
  }
  std::string u = unit;
  std::transform(u.begin(), u.end(), u.begin(), ::tolower);
  double mult = 0;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "kib" || u == "k") mult = static_cast<double>(kKiB);
  else if (u == "mib" || u == "m") mult = static_cast<double>(kMiB);
  else if (u == "gib" || u == "g") mult = static_cast<double>(kGiB);
  else if (u == "kb") mult = 1e3;
  else if (u == "mb") mult = 1e6;
  else if (u == "gb") mult = 1e9;
  else bad();
  double bytes = n * mult;
  // Up to 1 TiB: past that it is a typo, and a double no longer counts bytes exactly.
  if (!(bytes >= 1) || bytes > static_cast<double>(kGiB << 10)) bad();
  return static_cast<uint64_t>(bytes);
}

// "16 MiB" for a round size, as the user wrote it; size_text otherwise.
std::string cap_text(uint64_t n) {
  for (auto [unit, name] : {std::pair{kGiB, "GiB"}, std::pair{kMiB, "MiB"}, std::pair{kKiB, "KiB"}})
    if (n >= unit && n % unit == 0) return std::to_string(n / unit) + " " + name;
  return n < kKiB ? std::to_string(n) + " bytes" : size_text(n);
}

std::string too_large_text(uint64_t max_body) {
  return "the answer is larger than max_body " + cap_text(max_body);
}

std::vector<ArgSpec> request_args(bool with_method) {
  std::vector<ArgSpec> a = {
      req("url", ArgType::Url, "http:// or https:// URL"),
      opt("headers", ArgType::Map, "request headers { Name = \"value\" }"),
      opt("json", ArgType::Any, "a table sent as a JSON body (sets Content-Type)"),
      opt("body", ArgType::String, "a raw body"),
      opt("timeout", ArgType::Duration, "for the whole request", "30s"),
      opt("retries", ArgType::Int, "extra tries on a transport error or a 5xx", 0),
      opt("retry_delay", ArgType::Duration, "first pause between tries, doubling", "1s"),
      opt("expect", ArgType::Any, "status (or list of statuses) that counts as success; default: any below 400"),
      opt("readonly", ArgType::Bool, "true: this request changes nothing (a probe that runs in dry-run)", false),
      opt("insecure", ArgType::Bool, "skip TLS verification", false),
      max_body_arg()};
  if (with_method) a.insert(a.begin(), req("method", ArgType::String, "GET, POST, PUT, PATCH, DELETE, HEAD"));
  return a;
}

bool status_ok(const Args& a, long status) {
  const json& exp = a.at("expect");
  if (exp.is_number()) return status == exp.get<long>();
  if (exp.is_array()) {
    for (const auto& s : exp)
      if (s.is_number() && s.get<long>() == status) return true;
    return false;
  }
  return status > 0 && status < 400;
}

long planned_status(const Args& a) {
  const json& exp = a.at("expect");
  if (exp.is_number()) return exp.get<long>();
  if (exp.is_array() && !exp.empty() && exp[0].is_number()) return exp[0].get<long>();
  return 200;
}

std::string method_of(const Args& a, const std::string& fixed) {
  std::string m = fixed.empty() ? a.str("method") : fixed;
  std::transform(m.begin(), m.end(), m.begin(), ::toupper);
  return m;
}

json response_json(const os::HttpResponse& resp) {
  json headers = json::object();
  for (const auto& [k, v] : resp.headers) headers[k] = v;
  json out{{"status", resp.status},
           {"body", resp.body},
           {"headers", headers},
           {"elapsed_ms", resp.elapsed.count()}};
  json parsed = parse_json(resp.body);
  if (!parsed.is_discarded() && (parsed.is_object() || parsed.is_array())) out["json"] = parsed;
  return out;
}

json do_request(EffectContext& ctx, const Args& a, const std::string& method) {
  os::HttpRequest req;
  req.method = method;
  req.url = a.str("url");
  for (const auto& [k, v] : a.string_map("headers")) req.headers.emplace_back(k, v);
  if (a.has("json")) {
    req.body = a.at("json").dump();
    req.has_body = true;
    bool has_ct = false;
    for (auto& h : req.headers) {
      std::string k = h.first;
      std::transform(k.begin(), k.end(), k.begin(), ::tolower);
      has_ct = has_ct || k == "content-type";
    }
    if (!has_ct) req.headers.emplace_back("Content-Type", "application/json");
  } else if (a.has("body")) {
    req.body = a.str("body");
    req.has_body = true;
  }
  req.insecure = a.boolean("insecure");
  req.max_body = max_body_of(a);
  int tries = 1 + static_cast<int>(std::max<int64_t>(0, a.integer("retries")));
  Millis delay = a.duration("retry_delay");
  os::HttpResponse resp;
  for (int t = 1; t <= tries; ++t) {
    req.timeout = ctx.bound(a.duration("timeout"));
    if (req.timeout.count() <= 0) ctx.check_interrupt();
    resp = os::http_perform(req, [&] { ctx.check_interrupt(); });
    // Over the cap is not a passing failure: the same answer would come again.
    if (resp.too_large)
      throw EffectError(too_large_text(req.max_body) + " (" + method + " " + req.url + ")",
                        json{{"status", resp.status}, {"error", too_large_text(req.max_body)},
                             {"elapsed_ms", resp.elapsed.count()}});
    bool retryable = !resp.error.empty() || resp.status >= 500;
    if (!retryable || t == tries) break;
    ctx.note(method + " " + req.url + ": " +
             (resp.error.empty() ? "status " + std::to_string(resp.status) : resp.error) +
             "; try " + std::to_string(t + 1) + " of " + std::to_string(tries) + " in " +
             format_duration(delay));
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
      ctx.check_interrupt();
      std::this_thread::sleep_for(Millis(20));
    }
    delay *= 2;
  }
  std::string tries_text = tries > 1 ? " after " + std::to_string(tries) + " tries" : "";
  if (!resp.error.empty())
    throw EffectError(method + " " + req.url + ": " + resp.error + tries_text,
                      json{{"status", 0}, {"error", resp.error}, {"elapsed_ms", resp.elapsed.count()}});
  json out = response_json(resp);
  if (!status_ok(a, resp.status))
    throw EffectError(method + " " + req.url + " returned " + std::to_string(resp.status) +
                          tries_text + (resp.body.empty() ? "" : ": " + truncate(trim(resp.body), 200)),
                      out);
  return out;
}

// In a dry-run after a planned change that makes HTTP answers unpredictable (a service restart):
// the answer is unknown as a whole, never the one of the world before the change. Null when no
// such change was planned (the probe is then performed live). A planned POST, PUT, PATCH or
// DELETE makes its URL's origin (url_origin) unpredictable.
json unknown_after(EffectContext& ctx, const std::string& probe, const std::string& url = "") {
  std::string after = taint_of(ctx, "http");
  if (after.empty() && !url.empty()) {
    // A planned change sent to the same server (a flag switched off by POST): what it answers
    // afterwards is its own business, not the world before the change.
    const json& p = ctx.predictions();
    auto h = p.find("http");
    if (h != p.end() && h->is_object()) {
      auto o = h->find("origins");
      if (o != h->end() && o->is_object()) {
        auto it = o->find(url_origin(url));
        if (it != o->end() && it->is_string()) after = it->get<std::string>();
      }
    }
  }
  if (after.empty()) return nullptr;
  return unknown_value(probe + " after " + after);
}

void add_method(Registry& r, const std::string& name, const std::string& fixed) {
  Effect e;
  e.name = name;
  bool with_method = fixed.empty();
  e.summary = with_method ? "An HTTP request with any method"
                          : "HTTP " + fixed + (fixed == "GET" || fixed == "HEAD" ? " (a probe)" : "");
  e.kind = (fixed == "GET" || fixed == "HEAD") ? Kind::Probe : Kind::Change;
  e.args = request_args(with_method);
  e.positional = {"url"};
  if (with_method) e.positional = {};
  e.checkable = true;
  e.returns = "{ status, body, json (when the body is JSON), headers, elapsed_ms }";
  e.results = {{"status", "integer", "HTTP status"}, {"body", "string", "the body"}, {"json", "any", "the body decoded, when it is JSON"}, {"headers", "map", "name → value"}, {"elapsed_ms", "number", "milliseconds"}};
  e.kind_for = [fixed](const Args& a) {
    std::string m = method_of(a, fixed);
    if (m == "GET" || m == "HEAD" || a.boolean("readonly")) return Kind::Probe;
    return Kind::Change;
  };
  e.describe = [fixed](const Args& a) {
    std::string s = method_of(a, fixed) + " " + a.str("url");
    if (a.has("json")) s += " " + truncate(a.at("json").dump(), 120);
    return s;
  };
  e.apply = [fixed](EffectContext& ctx, const Args& a) { return do_request(ctx, a, method_of(a, fixed)); };
  e.planned = [](const Args& a, const json&) {
    return json{{"status", planned_status(a)}, {"body", ""}, {"json", json::object()},
                {"headers", json::object()}, {"elapsed_ms", 0}};
  };
  // Called for probe-kind calls only (GET, HEAD, readonly); changes are planned as before.
  e.predicted = [name, fixed](EffectContext& ctx, const Args& a) -> json {
    return unknown_after(ctx, name + (fixed.empty() ? " " + method_of(a, fixed) : "") + " " + a.str("url"),
                         a.str("url"));
  };
  // A planned change makes later answers of the same server unknown (see unknown_after).
  e.predict = [fixed](EffectContext& ctx, const Args& a, const json&, const json&) {
    json& h = ctx.predictions()["http"];
    if (!h.is_object()) h = json::object();
    h["origins"][url_origin(a.str("url"))] = method_of(a, fixed) + " " + url_origin(a.str("url"));
  };
  r.add(std::move(e));
}

// One GET; the status, or 0 with the transport error. An answer over max_body throws when
// `strict`, else counts as no answer.
std::pair<long, std::string> probe_once(EffectContext& ctx, const Args& a, Millis timeout, bool strict) {
  os::HttpRequest req;
  req.url = a.str("url");
  req.max_body = max_body_of(a);
  req.timeout = std::max(Millis(1), ctx.bound(timeout));
  req.connect_timeout = std::min(req.timeout, Millis(5000));
  auto resp = os::http_perform(req, [&] { ctx.check_interrupt(); });
  if (resp.too_large && strict)
    throw EffectError(too_large_text(req.max_body) + " (GET " + req.url + ")",
                      json{{"status", resp.status}, {"error", too_large_text(req.max_body)}});
  if (resp.too_large) return {0, too_large_text(req.max_body)};
  if (!resp.error.empty()) return {0, resp.error};
  return {resp.status, resp.body};
}

bool healthy(const Args& a, long status, const std::string& body) {
  if (!status_ok(a, status)) return false;
  if (a.has("body_contains")) return body.find(a.str("body_contains")) != std::string::npos;
  return true;
}

// The p-th percentile (0..100) of sorted values, nearest rank; 0 for none.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double round1(double v) { return std::round(v * 10.0) / 10.0; }

json sample(EffectContext& ctx, const Args& a) {
  os::SampleRequest req;
  req.url = a.str("url");
  for (const auto& [k, v] : a.string_map("headers")) req.headers.emplace_back(k, v);
  req.n = a.has("n") ? a.integer("n") : 0;
  if (a.has("n") && a.has("duration")) bad_arg(a, "n", "give n = or duration =, not both");
  if (a.has("n") && (req.n < 1 || req.n > 100000)) bad_arg(a, "n", "between 1 and 100000 expected");
  if (!a.has("n")) {
    req.duration = a.has("duration") ? a.duration("duration") : Millis(0);
    if (!a.has("duration")) req.n = 20;
    else if (req.duration.count() <= 0) bad_arg(a, "duration", "a positive duration expected");
  }
  int64_t conc = a.integer("concurrency");
  if (conc < 1 || conc > 64) bad_arg(a, "concurrency", "between 1 and 64 expected");
  req.concurrency = static_cast<int>(conc);
  req.timeout = a.duration("timeout");
  req.max_body = max_body_of(a);
  req.insecure = a.boolean("insecure");
  // The step's deadline bounds the whole sample: no request outlives it, and when it passes the
  // call fails (a sample cut short is not the sample that was asked for).
  req.timeout = std::max(Millis(1), ctx.bound(req.timeout));
  auto res = os::http_sample(req, [&] { ctx.check_interrupt(); });
  int64_t n = static_cast<int64_t>(res.statuses.size()), errors = 0;
  json statuses = json::object();
  std::vector<double> ok_times;
  for (size_t i = 0; i < res.statuses.size(); ++i) {
    long st = res.statuses[i];
    std::string key = st ? std::to_string(st) : "error";
    statuses[key] = statuses.value(key, 0) + 1;
    if (!healthy(a, st, "")) ++errors;
    if (st) ok_times.push_back(res.times_ms[i]);
  }
  std::sort(ok_times.begin(), ok_times.end());
  double sum = 0;
  for (double t : ok_times) sum += t;
  json out{{"n", n},
           {"errors", errors},
           {"error_rate", n ? round1(100.0 * static_cast<double>(errors) / static_cast<double>(n)) / 100.0 : 0.0},
           {"p50_ms", round1(percentile(ok_times, 50))},
           {"p95_ms", round1(percentile(ok_times, 95))},
           {"p99_ms", round1(percentile(ok_times, 99))},
           {"mean_ms", ok_times.empty() ? 0.0 : round1(sum / static_cast<double>(ok_times.size()))},
           {"max_ms", ok_times.empty() ? 0.0 : round1(ok_times.back())},
           {"statuses", statuses},
           {"elapsed_ms", res.elapsed.count()}};
  if (!res.last_error.empty()) out["last_error"] = res.last_error;
  return out;
}

}  // namespace

std::string url_origin(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto path = url.find_first_of("/?#", scheme + 3);
  std::string o = url.substr(0, path);
  auto at = o.find('@', scheme + 3);  // userinfo is not part of the origin (nor shown)
  if (at != std::string::npos) o = o.substr(0, scheme + 3) + o.substr(at + 1);
  return o;
}

void register_http(Registry& r) {
  add_method(r, "http.get", "GET");
  add_method(r, "http.head", "HEAD");
  add_method(r, "http.post", "POST");
  add_method(r, "http.put", "PUT");
  add_method(r, "http.patch", "PATCH");
  add_method(r, "http.delete", "DELETE");
  add_method(r, "http.request", "");

  {
    Effect e;
    e.name = "http.check";
    e.summary = "One GET: true if it answers with the expected status, false otherwise (never raises for the server's state)";
    e.args = {req("url", ArgType::Url, "URL"),
              opt("expect", ArgType::Any, "status or list of statuses", 200),
              opt("body_contains", ArgType::String, "the body must contain this text"),
              opt("timeout", ArgType::Duration, "for the request", "5s"), max_body_arg()};
    e.positional = {"url"};
    e.returns = "boolean";
    e.describe = [](const Args& a) { return "check " + a.str("url"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto [status, body] = probe_once(ctx, a, a.duration("timeout"), false);
      if (status == 0) ctx.note(a.str("url") + ": " + body);
      return healthy(a, status, body);
    };
    e.planned = [](const Args&, const json&) -> json { return true; };
    e.predicted = [](EffectContext& ctx, const Args& a) {
      return unknown_after(ctx, "http.check " + a.str("url"), a.str("url"));
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "http.wait_healthy";
    e.summary = "Poll a URL with backoff until it answers the expected status; fails at the timeout with the last answer";
    e.kind = Kind::Wait;
    e.args = {req("url", ArgType::Url, "URL"),
              opt("expect", ArgType::Any, "status or list of statuses", 200),
              opt("body_contains", ArgType::String, "the body must contain this text"),
              opt("timeout", ArgType::Duration, "give up after this", "60s"),
              opt("interval", ArgType::Duration, "first pause between polls; grows by half up to 5s", "250ms"),
              max_body_arg()};
    e.positional = {"url"};
    e.returns = "{ status, attempts, waited (ms) }";
    e.results = {{"status", "integer", "the last status"}, {"attempts", "integer", "requests made"}, {"waited", "integer", "milliseconds"}};
    e.describe = [](const Args& a) {
      return "wait up to " + format_duration(a.duration("timeout")) + " for " + a.str("url") +
             " to be healthy";
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      auto [status, body] = probe_once(ctx, a, Millis(2000), false);
      if (status == 0) return "now: no answer (" + body + ")";
      return "now: " + std::to_string(status) + (healthy(a, status, body) ? " (healthy)" : " (not healthy)");
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto t0 = std::chrono::steady_clock::now();
      Millis timeout = a.duration("timeout");
      auto until = t0 + ctx.bound(timeout);
      Millis interval = a.duration("interval");
      std::string last = "no answer yet";
      int attempts = 0;
      while (true) {
        ++attempts;
        auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
        auto [status, body] = probe_once(ctx, a, std::max(Millis(1), std::min(left, Millis(5000))), true);
        if (healthy(a, status, body)) {
          auto waited = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
          return json{{"status", status}, {"attempts", attempts}, {"waited", waited.count()}};
        }
        // A poll cut short by the deadline says nothing new: keep the last real answer.
        bool cut_short = status == 0 && left < Millis(1000) && last.rfind("status ", 0) == 0;
        if (!cut_short)
          last = status ? "status " + std::to_string(status) + (body.empty() ? "" : " " + truncate(trim(body), 120))
                        : body;
        auto now = std::chrono::steady_clock::now();
        if (now + Millis(50) >= until) break;
        auto pause_until = std::min(until, now + interval);
        while (std::chrono::steady_clock::now() < pause_until) {
          ctx.check_interrupt();
          auto rest = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
          ctx.progress("waiting for " + a.str("url") + ": " + last + " (" + format_duration(rest) + " left)");
          std::this_thread::sleep_for(Millis(50));
        }
        interval = std::min(Millis(5000), interval + interval / 2);
      }
      auto waited = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
      throw EffectError(a.str("url") + " not healthy after " + format_duration(waited) + " (" +
                            std::to_string(attempts) + " polls): last " + last,
                        json{{"status", 0}, {"attempts", attempts}, {"waited", waited.count()}, {"last", last}});
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"status", planned_status(a)}, {"attempts", 0}, {"waited", 0}};
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "http.sample";
    e.summary = "Many GETs of one URL, a few at a time: the error rate and latency percentiles (a probe, for metric targets)";
    e.args = {req("url", ArgType::Url, "URL"),
              opt("n", ArgType::Int, "this many requests (default 20 when no duration is given); at most 100000"),
              opt("duration", ArgType::Duration, "instead of n: keep sampling this long"),
              opt("concurrency", ArgType::Int, "requests in flight at once, 1 to 64", 1),
              opt("expect", ArgType::Any, "status or list of statuses that is not an error; default: any below 400"),
              opt("headers", ArgType::Map, "request headers { Name = \"value\" }"),
              opt("timeout", ArgType::Duration, "for each request; a request past it counts as an error", "10s"),
              opt("insecure", ArgType::Bool, "skip TLS verification", false), max_body_arg()};
    e.positional = {"url"};
    e.returns = "{ n, errors, error_rate (0..1), p50_ms, p95_ms, p99_ms, mean_ms, max_ms, statuses = { [\"200\"] = n, error = n }, elapsed_ms, last_error }";
    e.results = {{"n", "integer", "requests made"}, {"errors", "integer", "failed requests"}, {"error_rate", "number", "0..1"}, {"p50_ms", "number", "median latency"}, {"p95_ms", "number", "95th percentile"}, {"p99_ms", "number", "99th percentile"}, {"mean_ms", "number", "mean latency"}, {"max_ms", "number", "slowest"}, {"statuses", "map", "status (\"200\", \"error\") → count"}, {"elapsed_ms", "number", "milliseconds in all"}, {"last_error", "string", "the last failure, or nil"}};
    e.describe = [](const Args& a) {
      std::string how = a.has("duration") ? "for " + format_duration(a.duration("duration"))
                                          : std::to_string(a.has("n") ? a.integer("n") : 20) + " times";
      return "sample " + a.str("url") + " " + how +
             (a.integer("concurrency") > 1 ? ", " + std::to_string(a.integer("concurrency")) + " at a time" : "");
    };
    e.apply = sample;
    e.planned = [](const Args& a, const json&) {
      return json{{"n", a.has("n") ? a.integer("n") : 20}, {"errors", 0}, {"error_rate", 0.0}, {"p50_ms", 0},
                  {"p95_ms", 0}, {"p99_ms", 0}, {"mean_ms", 0}, {"max_ms", 0}, {"statuses", json::object()},
                  {"elapsed_ms", 0}};
    };
    e.predicted = [](EffectContext& ctx, const Args& a) {
      return unknown_after(ctx, "http.sample " + a.str("url"), a.str("url"));
    };
    r.add(std::move(e));
  }
}

}  // namespace rb
