// notify.*: telling people. notify.webhook POSTs JSON to a Slack, Teams or generic incoming
// webhook; notify.email sends one mail through SMTP (libcurl). Both are changes: a dry-run plans
// them (shows the text it would send) and sends nothing; a live run sends each once, and the
// journal — with the run's secrets redacted — keeps what was sent. A webhook URL's path and
// query are its credential (Slack's /services/T…/B…/xyz): they are redacted wherever the call
// is shown.
#include <algorithm>
#include <random>
#include <thread>

#include "core/settings.h"
#include "core/clock.h"
#include "core/strings.h"
#include "effects/effects.h"
#include "effects/pkg_util.h"
#include "effects/url.h"
#include "effects/util.h"
#include "os/http_client.h"

namespace rb {
namespace {

constexpr size_t kMaxMessage = 1u << 20;  // 1 MiB of text or JSON is no notification

// An argument the runbook left out, from the operator's config ([notify] in config.toml):
// resolved when the call is performed, so the journal records the call as the runbook made it.
std::string configured(const std::string& key) { return setting("notify." + key).value_or(""); }

std::string mail_arg(const Args& a, const std::string& key) {
  return a.has(key) ? a.str(key) : configured(key);
}

// What a webhook call shows of its URL: its origin (effects/url.h). describe() gets the URL
// redacted, "https://hooks.example.com***" when its path is a secret: the marks go too.
std::string shown_origin(const std::string& url) {
  if (url.find("://") == std::string::npos) return "?";
  std::string o = url_origin(url);
  while (o.size() > 3 && o.compare(o.size() - 3, 3, "***") == 0) o.resize(o.size() - 3);
  return o;
}

bool secret_header(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  for (const char* w : {"auth", "token", "key", "secret", "signature", "cookie", "password"})
    if (name.find(w) != std::string::npos) return true;
  return false;
}

std::vector<std::string> webhook_secrets(const Args& a) {
  std::vector<std::string> out = pkg::url_secrets({a.str_or("url", "")});
  std::string url = a.str_or("url", "");
  auto scheme = url.find("://");
  if (scheme != std::string::npos) {
    auto path = url.find_first_of("/?#", scheme + 3);
    // "/" alone or a short path ("/hook") is not a credential; a long one is (Slack, Teams,
    // Discord and most generic receivers put the token there).
    if (path != std::string::npos && url.size() - path > 8) out.push_back(url.substr(path));
  }
  if (a.has("headers"))
    for (const auto& [k, v] : a.string_map("headers"))
      if (secret_header(k) && v.size() >= 4) out.push_back(v);
  return out;
}

// The URL to POST to: the argument, else the config's [notify] webhook.
std::string webhook_url(const Args& a, bool required = true) {
  if (a.has("url")) return a.str("url");
  std::string u = configured("webhook");
  if (u.empty() && required)
    bad_arg(a, "url", "no url given, and no [notify] webhook in the config (runbook config shows it)");
  return u;
}

std::string format_of(const Args& a) {
  std::string f = a.str("format");
  if (f != "generic" && f != "slack" && f != "teams")
    bad_arg(a, "format", "\"generic\", \"slack\" or \"teams\" expected, got \"" + f + "\"");
  return f;
}

// The JSON body: `json` as given, or `text` wrapped as the format wants it.
json webhook_body(const Args& a) {
  bool has_json = a.has("json"), has_text = a.has("text");
  if (has_json == has_text) bad_arg(a, has_json ? "json" : "text", "give exactly one of json = { ... } and text = \"...\"");
  std::string f = format_of(a);
  json body;
  if (has_json) {
    body = a.at("json");
    if (!body.is_object() && !body.is_array()) bad_arg(a, "json", "a table expected");
  } else {
    const std::string& text = a.str("text");
    if (text.empty()) bad_arg(a, "text", "an empty message");
    if (f == "teams")
      body = json{{"@type", "MessageCard"}, {"@context", "https://schema.org/extensions"}, {"text", text}};
    else
      body = json{{"text", text}};
  }
  if (body.dump().size() > kMaxMessage) bad_arg(a, has_json ? "json" : "text", "longer than 1 MiB");
  return body;
}

// What a webhook call shows: the text, or the first text field of the JSON.
std::string message_text(const Args& a) {
  if (a.has("text")) return a.str("text");
  const json& j = a.at("json");
  if (j.is_object()) {
    for (const char* k : {"text", "summary", "title", "message", "content"}) {
      auto it = j.find(k);
      if (it != j.end() && it->is_string()) return it->get<std::string>();
    }
  }
  return j.dump();
}

std::string first_line(const std::string& s) {
  std::string t = trim(s);
  auto nl = t.find('\n');
  return truncate(nl == std::string::npos ? t : t.substr(0, nl) + " …", 100);
}

json send_webhook(EffectContext& ctx, const Args& a) {
  os::HttpRequest req;
  req.method = "POST";
  req.url = webhook_url(a);
  if (!a.has("url"))  // the configured webhook's path is its credential, as a given one's is
    for (const auto& s : pkg::url_secrets({req.url})) ctx.add_secret(s);
  if (!a.has("url")) {
    auto scheme = req.url.find("://");
    auto path = scheme == std::string::npos ? std::string::npos : req.url.find_first_of("/?#", scheme + 3);
    if (path != std::string::npos && req.url.size() - path > 8) ctx.add_secret(req.url.substr(path));
  }
  req.body = webhook_body(a).dump();
  req.has_body = true;
  bool has_ct = false;
  for (const auto& [k, v] : a.string_map("headers")) {
    req.headers.emplace_back(k, v);
    std::string l = k;
    std::transform(l.begin(), l.end(), l.begin(), ::tolower);
    has_ct = has_ct || l == "content-type";
  }
  if (!has_ct) req.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  req.follow_redirects = false;  // a redirected POST would go somewhere nobody configured
  req.max_body = 1u << 20;
  int tries = 1 + static_cast<int>(std::clamp<int64_t>(a.integer("retries"), 0, 10));
  Millis delay = a.duration("retry_delay");
  std::string where = "POST " + shown_origin(req.url) + "/…";
  os::HttpResponse resp;
  for (int t = 1; t <= tries; ++t) {
    req.timeout = ctx.bound(a.duration("timeout"));
    if (req.timeout.count() <= 0) ctx.check_interrupt();
    resp = os::http_perform(req, [&] { ctx.check_interrupt(); });
    // Only what surely was not delivered is tried again: no connection, or a 5xx/429 answer. A
    // timeout after the request was sent may have been delivered; a second copy is worse.
    bool not_delivered = (!resp.error.empty() && !resp.timed_out) || resp.status >= 500 || resp.status == 429;
    if (!not_delivered || t == tries) break;
    ctx.note(where + ": " + (resp.error.empty() ? "status " + std::to_string(resp.status) : resp.error) +
             "; try " + std::to_string(t + 1) + " of " + std::to_string(tries) + " in " + format_duration(delay));
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
      ctx.check_interrupt();
      std::this_thread::sleep_for(Millis(20));
    }
    delay *= 2;
  }
  json out{{"status", resp.status}, {"bytes", req.body.size()}, {"elapsed_ms", resp.elapsed.count()}};
  if (!resp.error.empty()) {
    out["error"] = resp.error;
    throw EffectError(where + ": " + resp.error + (resp.timed_out ? " (it may have been delivered; not sent again)" : ""), out);
  }
  if (resp.status < 200 || resp.status >= 300)
    throw EffectError(where + " returned " + std::to_string(resp.status) +
                          (resp.body.empty() ? "" : ": " + truncate(trim(resp.body), 200)),
                      out);
  out["response"] = truncate(resp.body, 1000);
  return out;
}

// --- email ---

bool bad_address(const std::string& s) {
  if (s.empty() || s.size() > 254) return true;
  auto at = s.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == s.size() || s.find('@', at + 1) != std::string::npos)
    return true;
  for (unsigned char c : s)
    if (c <= 32 || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';' || c == '"' ||
        c == '\\' || c == 127)
      return true;
  return false;
}

std::vector<std::string> addresses(const Args& a, const std::string& name) {
  std::vector<std::string> out;
  json from_config;
  if (!a.has(name)) {
    if (name != "to" || configured("to").empty()) return out;
    from_config = json::array();
    for (const auto& x : split(configured("to"), ',')) from_config.push_back(trim(x));
  }
  const json& v = a.has(name) ? a.at(name) : from_config;
  auto one = [&](const json& x) {
    if (!x.is_string()) bad_arg(a, name, "an address or a list of addresses expected");
    std::string s = trim(x.get<std::string>());
    if (bad_address(s)) bad_arg(a, name, "not a plain mail address: \"" + truncate(s, 80) + "\" (name@example.com)");
    out.push_back(s);
  };
  if (v.is_array()) {
    if (v.size() > 100) bad_arg(a, name, "more than 100 recipients");
    for (const auto& x : v) one(x);
  } else {
    one(v);
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += t[(n >> k) & 63];
  }
  if (i < in.size()) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) n |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += t[(n >> 18) & 63];
    out += t[(n >> 12) & 63];
    out += i + 1 < in.size() ? t[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 128; });
}

// A header value: as it is when ASCII, else RFC 2047 encoded-words of whole UTF-8 characters,
// folded so that no line is long.
std::string header_value(const std::string& v) {
  if (ascii(v)) return v;
  std::string out;
  size_t i = 0;
  while (i < v.size()) {
    size_t j = std::min(v.size(), i + 45);
    while (j < v.size() && j > i + 1 && (static_cast<unsigned char>(v[j]) & 0xC0) == 0x80) --j;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(v.substr(i, j - i)) + "?=";
    i = j;
  }
  return out;
}

std::string rfc5322_date(int64_t epoch_ms) {
  std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string domain_of(const std::string& addr) { return addr.substr(addr.find('@') + 1); }

std::string mail_text(const Args& a, const std::vector<std::string>& to, const std::vector<std::string>& cc) {
  std::string subject = a.str("subject"), body = a.str("body"), from = mail_arg(a, "from");
  std::string msg;
  msg += "Date: " + rfc5322_date(now_epoch_ms()) + "\r\n";
  msg += "From: " + from + "\r\n";
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",\r\n ") + x;
    return s;
  };
  msg += "To: " + join(to) + "\r\n";
  if (!cc.empty()) msg += "Cc: " + join(cc) + "\r\n";
  msg += "Subject: " + header_value(subject) + "\r\n";
  std::random_device rd;
  char id[40];
  std::snprintf(id, sizeof id, "%lld.%08x", static_cast<long long>(now_epoch_ms()), rd());
  msg += "Message-ID: <runbook." + std::string(id) + "@" + domain_of(from) + ">\r\n";
  msg += "MIME-Version: 1.0\r\n";
  msg += "Content-Type: text/plain; charset=utf-8\r\n";
  // Lines end in CRLF; a body that is not plain short ASCII lines goes as base64.
  std::string norm;
  norm.reserve(body.size() + body.size() / 32);
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\r') continue;
    if (body[i] == '\n') norm += "\r\n";
    else norm += body[i];
  }
  bool plain = ascii(norm);
  size_t line = 0;
  for (char c : norm) {
    line = c == '\n' ? 0 : line + 1;
    if (line > 900) plain = false;
  }
  if (plain) {
    msg += "Content-Transfer-Encoding: 7bit\r\n\r\n" + norm;
  } else {
    msg += "Content-Transfer-Encoding: base64\r\n\r\n";
    std::string b = base64(norm);
    for (size_t i = 0; i < b.size(); i += 76) msg += b.substr(i, 76) + "\r\n";
  }
  if (msg.size() < 2 || msg.compare(msg.size() - 2, 2, "\r\n") != 0) msg += "\r\n";
  return msg;
}

void check_mail_args(const Args& a) {
  const std::string url = mail_arg(a, "smtp");
  if (url.empty()) bad_arg(a, "smtp", "no smtp given, and no [notify] smtp in the config (runbook config shows it)");
  if (url.rfind("smtp://", 0) != 0 && url.rfind("smtps://", 0) != 0)
    bad_arg(a, "smtp", "smtp://host:port or smtps://host:port expected");
  std::string tls = a.str("tls");
  if (tls != "try" && tls != "required" && tls != "none")
    bad_arg(a, "tls", "\"try\", \"required\" or \"none\" expected, got \"" + tls + "\"");
  if (mail_arg(a, "from").empty()) bad_arg(a, "from", "no from given, and no [notify] from in the config");
  if (bad_address(mail_arg(a, "from"))) bad_arg(a, "from", "not a plain mail address (name@example.com)");
  if (addresses(a, "to").empty()) bad_arg(a, "to", "at least one recipient");
  addresses(a, "cc");
  const std::string& subject = a.str("subject");
  if (subject.find_first_of("\r\n") != std::string::npos) bad_arg(a, "subject", "one line expected");
  if (subject.size() > 998) bad_arg(a, "subject", "longer than 998 bytes");
  if (a.str("body").size() > kMaxMessage) bad_arg(a, "body", "longer than 1 MiB");
}

std::string recipients_text(const Args& a) {
  auto to = addresses(a, "to"), cc = addresses(a, "cc");
  std::string s;
  for (const auto& x : to) s += (s.empty() ? "" : ", ") + x;
  for (const auto& x : cc) s += ", " + x;
  return s;
}

}  // namespace

void register_notify(Registry& r) {
  {
    Effect e;
    e.name = "notify.webhook";
    e.summary = "POST a message to a Slack, Teams or generic JSON webhook (a change: planned in a dry-run, sent once live)";
    e.kind = Kind::Change;
    e.args = {opt("url", ArgType::Url, "the webhook URL; its path and query are treated as a secret (default: the config's [notify] webhook)"),
              opt("text", ArgType::String, "the message; sent as { text = ... } (or a Teams MessageCard)"),
              opt("json", ArgType::Any, "the whole JSON body instead (Slack blocks, a custom receiver)"),
              opt("format", ArgType::String, "how `text` is wrapped: \"generic\" and \"slack\" send { text }, \"teams\" a MessageCard", "generic"),
              opt("headers", ArgType::Map, "extra request headers; values of Authorization-like headers are redacted"),
              opt("timeout", ArgType::Duration, "for each try", "10s"),
              opt("retries", ArgType::Int, "extra tries when the message surely did not arrive (no connection, 5xx, 429); at most 10", 2),
              opt("retry_delay", ArgType::Duration, "first pause between tries, doubling", "1s")};
    e.positional = {"url"};
    e.returns = "{ status, bytes, elapsed_ms, response }";
    e.results = {{"status", "integer", "HTTP status"}, {"bytes", "integer", "bytes sent"}, {"elapsed_ms", "number", "milliseconds"}, {"response", "string", "the response body"}};
    e.secrets_of = webhook_secrets;
    e.describe = [](const Args& a) {
      std::string u = webhook_url(a, false);
      return "notify " + (u.empty() ? std::string("(no webhook configured)") : shown_origin(u)) + "/…: " + first_line(message_text(a));
    };
    e.preview = [](EffectContext&, const Args& a) -> json {
      json body = webhook_body(a);
      std::string text = message_text(a);
      return json{{"text", "would POST " + size_text(body.dump().size()) + " of JSON to " +
                               shown_origin(webhook_url(a)) + "/…:\n" + truncate(text, 2000)},
                  {"message", text}};
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"status", 200}, {"bytes", webhook_body(a).dump().size()}, {"elapsed_ms", 0}, {"response", ""}};
    };
    e.apply = send_webhook;
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "notify.email";
    e.summary = "Send one plain-text mail through an SMTP server (libcurl; a change: planned in a dry-run, sent once live)";
    e.kind = Kind::Change;
    e.args = {opt("smtp", ArgType::Url, "smtp://host:port (STARTTLS per `tls`) or smtps://host:port (default: the config's [notify] smtp)"),
              opt("from", ArgType::String, "the sender address (default: the config's [notify] from)"),
              opt("to", ArgType::Any, "an address or a list of them (default: the config's [notify] to)"),
              opt("cc", ArgType::Any, "an address or a list of them"),
              req("subject", ArgType::String, "one line; UTF-8 is encoded for mail"),
              req("body", ArgType::String, "plain text; UTF-8 and long lines go as base64"),
              opt("username", ArgType::String, "SMTP AUTH user"),
              secret(opt("password", ArgType::String, "SMTP AUTH password (a secret: give it from a secret param)")),
              opt("tls", ArgType::String, "\"try\" (STARTTLS when offered), \"required\" or \"none\"", "try"),
              opt("insecure", ArgType::Bool, "skip TLS certificate verification", false),
              opt("timeout", ArgType::Duration, "for the whole conversation", "30s")};
    e.returns = "{ recipients, bytes, code, elapsed_ms }";
    e.results = {{"recipients", "list", "addresses"}, {"bytes", "integer", "bytes sent"}, {"code", "integer", "SMTP reply code"}, {"elapsed_ms", "number", "milliseconds"}};
    e.secrets_of = [](const Args& a) { return pkg::url_secrets({a.str_or("smtp", "")}); };
    e.describe = [](const Args& a) {
      return "mail \"" + truncate(a.str_or("subject", ""), 100) + "\" to " + truncate(recipients_text(a), 200);
    };
    e.preview = [](EffectContext&, const Args& a) -> json {
      check_mail_args(a);
      return json{{"text", "would mail " + recipients_text(a) + " through " + shown_origin(mail_arg(a, "smtp")) +
                               ":\nSubject: " + a.str("subject") + "\n" + truncate(a.str("body"), 2000)},
                  {"subject", a.str("subject")}};
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"recipients", addresses(a, "to").size() + addresses(a, "cc").size()},
                  {"bytes", a.str("body").size()}, {"code", 250}, {"elapsed_ms", 0}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      check_mail_args(a);
      auto to = addresses(a, "to"), cc = addresses(a, "cc");
      os::MailRequest m;
      m.url = a.str("smtp");
      m.from = mail_arg(a, "from");
      m.to = to;
      m.to.insert(m.to.end(), cc.begin(), cc.end());
      m.message = mail_text(a, to, cc);
      m.username = a.str_or("username", "");
      m.password = a.str_or("password", "");
      m.tls = a.str("tls");
      m.insecure = a.boolean("insecure");
      m.timeout = ctx.bound(a.duration("timeout"));
      if (m.timeout.count() <= 0) ctx.check_interrupt();
      auto res = os::smtp_send(m, [&] { ctx.check_interrupt(); });
      json out{{"recipients", m.to.size()}, {"bytes", m.message.size()}, {"code", res.code},
               {"elapsed_ms", res.elapsed.count()}};
      if (!res.error.empty()) {
        out["error"] = res.error;
        throw EffectError("mail through " + shown_origin(m.url) + ": " + res.error +
                              (res.code ? " (SMTP " + std::to_string(res.code) + ")" : ""),
                          out);
      }
      return out;
    };
    r.add(std::move(e));
  }
}

}  // namespace rb
