// libpq plumbing for pg.*: connection strings whose password stays secret, connections and
// statements that never outlive the step's deadline (non-blocking libpq, cancelled on Ctrl-C),
// and result rows converted to typed JSON.
#pragma once
#include <libpq-fe.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"
#include "dispatch/args.h"
#include "dispatch/context.h"

namespace rb::pg {

// A `dsn` argument: a postgresql:// URI or "key=value ..." (empty: everything from PG* env).
struct Dsn {
  std::string raw;
  std::map<std::string, std::string> params;  // what the dsn sets, password excluded
  std::string password;                       // decoded; empty when the dsn has none
  // The same settings as key='value' pairs without the password: safe for argv (pg_dump).
  std::string conninfo_without_password() const;
  // "app@127.0.0.1:5433/app" for messages; unset parts come from the environment.
  std::string target() const;
};

// Throws ArgError (naming the effect and `dsn`) when the string does not parse. The message
// never quotes the string, which may hold the password.
Dsn parse_dsn(const std::string& effect, const std::string& raw);

// The password in a dsn, decoded and as written (a URI may percent-encode it), found even when
// the dsn does not parse, so a malformed dsn cannot leak it into an error.
std::vector<std::string> secrets_in(const std::string& raw);

// Replaces every secret in `text` by "***".
std::string scrub(std::string text, const std::vector<std::string>& secrets);

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// Parameters in text form; nullopt is SQL NULL.
using Params = std::vector<std::optional<std::string>>;
// The `params` argument (a list): numbers and booleans in their SQL text form, tables as JSON
// (for json/jsonb parameters).
Params params_of(const Args& a, const std::string& name = "params");

class Conn {
 public:
  // Connects within min(timeout, the step's time left); throws EffectError saying why not.
  Conn(EffectContext& ctx, const Dsn& dsn, Millis timeout);
  // Same, but reports failure in *why instead of throwing (pg.ping). ok() tells.
  Conn(EffectContext& ctx, const Dsn& dsn, Millis timeout, std::string* why);
  bool ok() const { return conn_ != nullptr; }
  PGconn* get() const { return conn_.get(); }

  // Runs one statement with text parameters within min(timeout, the step's time left, what is
  // left of the timeout the connection was opened with: one call's statements share it); on
  // timeout or Ctrl-C it is cancelled (the cancel waits at most half a second) and the
  // connection closed. Throws EffectError with the server's message (and
  // {sqlstate}) on failure.
  ResultPtr exec(const std::string& sql, const Params& params, Millis timeout);
  // Like exec, but returns the failed result instead of throwing (its status tells).
  ResultPtr run(const std::string& sql, const Params& params, Millis timeout, std::string* error);

  // One statement's outcome in a script: its command tag ("UPDATE 3") and rows (affected or
  // returned; a SELECT's rows are counted, not kept).
  struct Done {
    std::string command;
    int64_t rows = 0;
  };
  // Several statements in one string through the simple query protocol (PQsendQuery), with the
  // same bounds as run. *done gets one entry per statement that succeeded, in order; on failure
  // *error is set and the failed result returned (PG_DIAG_STATEMENT_POSITION is relative to sql).
  // The caller wraps it in BEGIN/COMMIT: the server runs a multi-statement string as one
  // implicit transaction only when it holds no transaction control itself.
  ResultPtr run_script(const std::string& sql, Millis timeout, std::vector<Done>* done, std::string* error);

 private:
  void connect(const Dsn& dsn, Millis timeout, std::string* why);
  ResultPtr drive(const std::string& sql, const Params& params, Millis timeout, std::string* error,
                  std::vector<Done>* script);
  bool wait_socket(bool for_write, SteadyTime until);
  void cancel();

  EffectContext& ctx_;
  std::vector<std::string> secrets_;
  std::string target_;
  ConnPtr conn_;
  SteadyTime until_ = SteadyTime::max();  // connect's timeout, shared by what follows
  Millis budget_{0};
  bool step_bound_ = false;  // until_ is the step's deadline, not the call's timeout
};

// Rows as objects in column order: integers and floats and numerics as numbers, bool as
// boolean, NULL as null, json/jsonb decoded; anything else as its text.
json rows_json(const PGresult* r);
// A single-column, single-row result as int64 (count(*), pg_database_size).
int64_t scalar_int(const PGresult* r);

}  // namespace rb::pg
