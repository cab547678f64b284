#include "effects/pg_conn.h"

#include <poll.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "core/error.h"
#include "core/strings.h"
#include "effects/util.h"

namespace rb::pg {
namespace {

// Type OIDs from pg_type.h (stable across server versions).
constexpr Oid kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114,
              kFloat4 = 700, kFloat8 = 701, kNumeric = 1700, kJsonb = 3802;

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

std::string one_line(std::string s) {
  for (auto& ch : s)
    if (ch == '\n' || ch == '\t') ch = ' ';
  std::string out;
  for (char ch : s)
    if (!(ch == ' ' && !out.empty() && out.back() == ' ')) out += ch;
  return trim(out);
}

// libpq quotes strings it cannot parse (a whole URI, a token); those quotes may hold the
// password, so they go.
std::string without_quoted(const std::string& msg) {
  std::string out;
  bool in = false;
  for (char ch : msg) {
    if (ch == '"') {
      if (!in) out += "\"…\"";
      in = !in;
      continue;
    }
    if (!in) out += ch;
  }
  return out;
}

std::string quote_conninfo(const std::string& v) {
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

void noop_notice(void*, const char*) {}

// How long a cancel may hold the call. PQcancel (libpq 15) connects anew and then waits for the
// server to close that connection: a stalled server holds it for minutes, so it runs on a thread
// of its own that is waited for this long and otherwise left to finish (or hang) alone.
constexpr Millis kCancelWait{500};

void cancel_bounded(PGconn* c) {
  PGcancel* k = PQgetCancel(c);
  if (!k) return;
  struct Done {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  try {
    // The thread owns the PGcancel and shares only `done`: nothing of this frame outlives it.
    std::thread([k, done] {
      char buf[256];
      PQcancel(k, buf, sizeof buf);
      PQfreeCancel(k);
      std::lock_guard<std::mutex> l(done->m);
      done->done = true;
      done->cv.notify_all();
    }).detach();
  } catch (const std::system_error&) {
    PQfreeCancel(k);  // no thread: the connection is closed unannounced, which also ends the query
    return;
  }
  std::unique_lock<std::mutex> l(done->m);
  done->cv.wait_for(l, kCancelWait, [&] { return done->done; });
}

// The most of a result (values, plus a little per value) kept in memory: past it a query is
// refused rather than left to exhaust the runner, and the journal could not take it anyway.
constexpr size_t kMaxResult = 64u << 20;

// Appends the rows of `from` to `to` (same columns), counting their size in *bytes; false when
// out of memory or past kMaxResult.
bool append_rows(PGresult* to, const PGresult* from, size_t* bytes) {
  int n = PQntuples(from), cols = PQnfields(from);
  for (int i = 0; i < n; ++i) {
    int at = PQntuples(to);
    for (int j = 0; j < cols; ++j) {
      bool null = PQgetisnull(from, i, j);
      int len = null ? -1 : PQgetlength(from, i, j);
      *bytes += static_cast<size_t>(std::max(len, 0)) + 16;
      if (*bytes > kMaxResult) return false;
      if (!PQsetvalue(to, at, j, null ? nullptr : PQgetvalue(from, i, j), len)) return false;
    }
    // A row of no columns (SELECT FROM t) has nothing to hold it: it is counted, not kept.
    *bytes += 16;
  }
  return true;
}

bool succeeded(const PGresult* r) {
  auto st = PQresultStatus(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

}  // namespace

std::string Dsn::conninfo_without_password() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : params) parts.push_back(k + "=" + quote_conninfo(v));
  return join(parts, " ");
}

std::string Dsn::target() const {
  auto get = [&](const char* key, const char* env, const std::string& def) {
    auto it = params.find(key);
    return it != params.end() ? it->second : env_or(env, def);
  };
  std::string user = get("user", "PGUSER", "");
  std::string host = get("host", "PGHOST", "localhost");
  std::string port = get("port", "PGPORT", "5432");
  std::string db = get("dbname", "PGDATABASE", user);
  return (user.empty() ? "" : user + "@") + host + ":" + port + (db.empty() ? "" : "/" + db);
}

Dsn parse_dsn(const std::string& effect, const std::string& raw) {
  Dsn d;
  d.raw = raw;
  if (trim(raw).empty()) return d;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(raw.c_str(), &err);
  if (!opts) {
    std::string why = err ? one_line(err) : "out of memory";
    if (err) PQfreemem(err);
    throw ArgError("bad argument 'dsn' to '" + effect + "' (not a postgresql:// URI or key=value string: " +
                   without_quoted(why) + ")");
  }
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val || !*o->val) continue;
    if (std::string(o->keyword) == "password") d.password = o->val;
    else d.params[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  return d;
}

std::vector<std::string> secrets_in(const std::string& raw) {
  std::vector<std::string> out;
  auto add = [&](const std::string& s) {
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  char* err = nullptr;
  if (PQconninfoOption* opts = PQconninfoParse(raw.c_str(), &err)) {
    for (PQconninfoOption* o = opts; o->keyword; ++o)
      if (std::string(o->keyword) == "password" && o->val) add(o->val);
    PQconninfoFree(opts);
  }
  if (err) PQfreemem(err);

  // As written, which differs when percent-encoded, and found even in a dsn that does not parse.
  size_t scheme = raw.find("://");
  if (scheme != std::string::npos) {
    std::string rest = raw.substr(scheme + 3);
    size_t end = rest.find_first_of("/?");
    size_t at = rest.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && (end == std::string::npos || at < end)) {
      std::string userinfo = rest.substr(0, at);
      size_t colon = userinfo.find(':');
      if (colon != std::string::npos) {
        add(userinfo.substr(colon + 1));
        add(percent_decode(userinfo.substr(colon + 1)));
      }
    }
    size_t q = raw.find("password=");
    if (q != std::string::npos) {
      std::string v = raw.substr(q + 9);
      v = v.substr(0, v.find('&'));
      add(v);
      add(percent_decode(v));
    }
  } else {
    size_t pos = 0;
    while ((pos = raw.find("password", pos)) != std::string::npos) {
      size_t i = pos + 8;
      pos = i;
      while (i < raw.size() && std::isspace(static_cast<unsigned char>(raw[i]))) ++i;
      if (i >= raw.size() || raw[i] != '=') continue;
      ++i;
      while (i < raw.size() && std::isspace(static_cast<unsigned char>(raw[i]))) ++i;
      std::string v;
      if (i < raw.size() && raw[i] == '\'') {
        for (++i; i < raw.size() && raw[i] != '\''; ++i) {
          if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
          v += raw[i];
        }
      } else {
        while (i < raw.size() && !std::isspace(static_cast<unsigned char>(raw[i]))) v += raw[i++];
      }
      add(v);
    }
  }
  return out;
}

std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  std::vector<std::string> s = secrets;
  std::sort(s.begin(), s.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& secret : s) {
    if (secret.size() < 2) continue;
    size_t pos = 0;
    while ((pos = text.find(secret, pos)) != std::string::npos) {
      text.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return text;
}

Params params_of(const Args& a, const std::string& name) {
  Params out;
  if (!a.has(name)) return out;
  const json& v = a.at(name);
  if (v.is_object() && v.empty()) return out;
  if (!v.is_array())
    throw ArgError("bad argument '" + name + "' to '" + a.effect() +
                   "' (a list expected: { 10, \"old\" } for $1, $2)");
  for (const auto& p : v) {
    if (p.is_null()) out.emplace_back(std::nullopt);
    else if (p.is_string()) out.emplace_back(p.get<std::string>());
    else if (p.is_boolean()) out.emplace_back(p.get<bool>() ? "true" : "false");
    else out.emplace_back(p.dump());  // numbers in their shortest exact form; tables as JSON
  }
  return out;
}

Conn::Conn(EffectContext& ctx, const Dsn& dsn, Millis timeout) : ctx_(ctx) {
  connect(dsn, timeout, nullptr);
}

Conn::Conn(EffectContext& ctx, const Dsn& dsn, Millis timeout, std::string* why) : ctx_(ctx) {
  connect(dsn, timeout, why);
}

bool Conn::wait_socket(bool for_write, SteadyTime until) {
  for (;;) {
    ctx_.check_interrupt();
    auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{PQsocket(conn_.get()), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    if (p.fd < 0) return true;  // let libpq report the broken connection
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50)));
    if (n != 0) return true;
  }
}

void Conn::connect(const Dsn& dsn, Millis timeout, std::string* why) {
  secrets_ = secrets_in(dsn.raw);
  if (!dsn.password.empty()) secrets_.push_back(dsn.password);
  if (const char* pw = std::getenv("PGPASSWORD"); pw && *pw) {
    secrets_.push_back(pw);
    ctx_.add_secret(pw);
  }
  target_ = dsn.target();
  Millis bound = ctx_.bound(timeout);
  // The call's whole budget: connecting and every statement after it share it.
  until_ = std::chrono::steady_clock::now() + bound;
  budget_ = bound;
  step_bound_ = bound < timeout;
  auto fail = [&](const std::string& msg) {
    std::string text = scrub("cannot connect to " + target_ + ": " + msg, secrets_);
    conn_.reset();
    if (why) {
      *why = text;
      return;
    }
    throw EffectError(text, json{{"target", target_}});
  };
  if (bound.count() <= 0) ctx_.check_interrupt();
  // libpq's own connect_timeout (whole seconds, at least 2) only moves on to the next host of a
  // multi-host dsn; the poll loop below is what holds the deadline. A dsn's value overrides it.
  std::string secs = std::to_string(std::max<int64_t>(2, (bound.count() + 999) / 1000));
  std::vector<const char*> keys = {"connect_timeout", "fallback_application_name"};
  std::vector<const char*> vals = {secs.c_str(), "runbook"};
  if (!trim(dsn.raw).empty()) {
    keys.push_back("dbname");
    vals.push_back(dsn.raw.c_str());
  }
  keys.push_back(nullptr);
  vals.push_back(nullptr);
  conn_.reset(PQconnectStartParams(keys.data(), vals.data(), 1));
  if (!conn_) return fail("out of memory");
  if (PQstatus(conn_.get()) == CONNECTION_BAD) return fail(one_line(PQerrorMessage(conn_.get())));
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  try {
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
      if (!wait_socket(st == PGRES_POLLING_WRITING, until_))
        return fail("no answer within " + format_duration(bound) +
                    (step_bound_ ? " (the step's deadline)" : ""));
      st = PQconnectPoll(conn_.get());
    }
  } catch (...) {
    conn_.reset();  // Ctrl-C or the deadline: a half-open connection is just closed
    throw;
  }
  if (st == PGRES_POLLING_FAILED) return fail(one_line(PQerrorMessage(conn_.get())));
  // Sending must not block either: a server that stops reading would hold a large statement
  // (or PQfinish's goodbye) in a blocking send.
  PQsetnonblocking(conn_.get(), 1);
  // Notices (a ROLLBACK outside a transaction) would go to stderr, past the reporter.
  PQsetNoticeProcessor(conn_.get(), noop_notice, nullptr);
}

void Conn::cancel() {
  if (!conn_) return;
  cancel_bounded(conn_.get());
  conn_.reset();  // whatever the server still sends is not waited for
}

ResultPtr Conn::run(const std::string& sql, const Params& params, Millis timeout, std::string* error) {
  return drive(sql, params, timeout, error, nullptr);
}

ResultPtr Conn::run_script(const std::string& sql, Millis timeout, std::vector<Done>* done,
                           std::string* error) {
  return drive(sql, {}, timeout, error, done);
}

ResultPtr Conn::drive(const std::string& sql, const Params& params, Millis timeout, std::string* error,
                      std::vector<Done>* script) {
  if (!conn_) {
    *error = "the connection was closed after an earlier timeout";
    return nullptr;
  }
  std::vector<const char*> vals;
  for (const auto& p : params) vals.push_back(p ? p->c_str() : nullptr);
  Millis bound = ctx_.bound(timeout);
  auto until = std::chrono::steady_clock::now() + bound;
  bool step = bound < timeout;
  if (until_ < until) {  // the call's budget, which connecting began to use, ends first
    until = until_;
    step = step_bound_;
    bound = budget_;
  }
  PGconn* c = conn_.get();
  // Always the extended protocol, even without parameters: it refuses "a; b", so one call is
  // exactly one statement. A script (run_script) is the one exception: the simple protocol.
  int sent = script ? PQsendQuery(c, sql.c_str())
                    : PQsendQueryParams(c, sql.c_str(), static_cast<int>(vals.size()), nullptr,
                                        vals.data(), nullptr, nullptr, 0);
  if (!sent) {
    *error = scrub(one_line(PQerrorMessage(c)), secrets_);
    return nullptr;
  }
  auto timed_out = [&] {
    cancel();
    *error = "timed out after " + format_duration(bound) + (step ? " (the step's deadline)" : "") +
             "; the statement was cancelled";
  };
  // Rows arrive one at a time, so that a result too large to hold is refused as it grows.
  PQsetSingleRowMode(c);
  ResultPtr keep, rows;
  size_t bytes = 0;
  int64_t script_rows = 0;  // a script's SELECT rows: counted as they pass, never kept
  try {
    // Non-blocking mode queues what the socket does not take at once; it is flushed here.
    for (int f = PQflush(c); f != 0; f = PQflush(c)) {
      if (f < 0) {
        *error = scrub(one_line(PQerrorMessage(c)), secrets_);
        return nullptr;
      }
      if (!wait_socket(true, until)) {
        timed_out();
        return nullptr;
      }
    }
    for (;;) {
      if (!PQconsumeInput(c)) {
        *error = scrub(one_line(PQerrorMessage(c)), secrets_);
        return nullptr;
      }
      if (PQisBusy(c)) {
        if (!wait_socket(false, until)) {
          timed_out();
          return nullptr;
        }
        continue;
      }
      PGresult* r = PQgetResult(c);
      if (!r) break;
      if (script && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        PQclear(r);
        ++script_rows;
        continue;
      }
      if (script && keep && !succeeded(keep.get())) {
        PQclear(r);  // after a failure nothing more runs; drained to the end
        continue;
      }
      if (script && succeeded(r)) {
        std::string tag = PQcmdStatus(r);
        int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? script_rows
                                                          : std::strtoll(PQcmdTuples(r), nullptr, 10);
        script_rows = 0;
        if (PQresultStatus(r) != PGRES_EMPTY_QUERY) script->push_back(Done{tag, n});
      }
      if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        ResultPtr row(r);
        if (!rows) rows.reset(PQcopyResult(r, PG_COPYRES_ATTRS));
        if (!rows || !append_rows(rows.get(), r, &bytes)) {
          cancel();
          *error = !rows ? "out of memory"
                         : "the result is larger than " + size_text(kMaxResult) +
                               " (select fewer rows or columns); the statement was cancelled";
          return nullptr;
        }
        continue;
      }
      if (rows && PQresultStatus(r) == PGRES_TUPLES_OK) {
        // The rows gathered so far under the final result's command status ("SELECT 12").
        ResultPtr done(r);
        r = PQcopyResult(done.get(), PG_COPYRES_ATTRS);
        size_t ignored = 0;
        if (!r || !append_rows(r, rows.get(), &ignored)) {
          if (r) PQclear(r);
          cancel();  // the connection may still owe the end of the exchange
          *error = "out of memory";
          return nullptr;
        }
        rows.reset();
      }
      // The first failure is the one to report; otherwise the last result (one statement).
      if (keep && !succeeded(keep.get())) PQclear(r);
      else keep.reset(r);
    }
  } catch (...) {
    // Ctrl-C or the step's deadline: the server stops the statement too.
    cancel();
    throw;
  }
  if (!keep) {
    *error = "no result";
    return nullptr;
  }
  if (!succeeded(keep.get())) {
    std::string msg = one_line(PQresultErrorMessage(keep.get()));
    for (const char* severity : {"ERROR:", "FATAL:"})
      if (msg.rfind(severity, 0) == 0) msg = trim(msg.substr(std::string(severity).size()));
    *error = scrub(msg, secrets_);
  }
  return keep;
}

ResultPtr Conn::exec(const std::string& sql, const Params& params, Millis timeout) {
  std::string error;
  ResultPtr r = run(sql, params, timeout, &error);
  if (!error.empty()) {
    json res = json::object();
    if (r) {
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      if (state) res["sqlstate"] = state;
    }
    throw EffectError(error, res);
  }
  return r;
}

json rows_json(const PGresult* r) {
  json rows = json::array();
  if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) return rows;
  int nrows = PQntuples(r), ncols = PQnfields(r);
  for (int i = 0; i < nrows; ++i) {
    json row = json::object();
    for (int j = 0; j < ncols; ++j) {
      std::string name = PQfname(r, j);
      if (PQgetisnull(r, i, j)) {
        row[name] = nullptr;
        continue;
      }
      std::string text(PQgetvalue(r, i, j), static_cast<size_t>(PQgetlength(r, i, j)));
      Oid t = PQftype(r, j);
      json v = text;
      if (t == kBool) {
        v = text == "t";
      } else if (t == kInt2 || t == kInt4 || t == kInt8 || t == kOid || t == kNumeric) {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec == std::errc() && p == text.data() + text.size()) {
          v = n;
        } else {
          char* end = nullptr;
          double d = std::strtod(text.c_str(), &end);
          // NaN and Infinity stay text: JSON (and so the journal) has no place for them.
          if (end && *end == '\0' && std::isfinite(d)) v = d;
        }
      } else if (t == kFloat4 || t == kFloat8) {
        char* end = nullptr;
        double d = std::strtod(text.c_str(), &end);
        if (end && *end == '\0' && std::isfinite(d)) v = d;
      } else if (t == kJson || t == kJsonb) {
        json parsed = parse_json(text);
        if (!parsed.is_discarded()) v = std::move(parsed);
      }
      row[name] = std::move(v);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

int64_t scalar_int(const PGresult* r) {
  if (!r || PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0)) return 0;
  return std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
}

}  // namespace rb::pg
