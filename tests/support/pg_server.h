// A real PostgreSQL for tests: initdb into a temp dir owned by the `postgres` user (the server
// refuses root), listening on 127.0.0.1:<free port> with its socket in the temp dir; a role
// with a password owning a database. Stopped (pg_ctl stop -m fast) at destruction.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "support/support.h"

namespace rb::test {

class PgServer {
 public:
  // Why a server cannot be started here (no runuser, no postgres user, no binaries), or "".
  static std::string unavailable();
  // Throws std::runtime_error with the server's log on failure.
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  const std::string& bin() const { return bin_; }
  const std::string& dir() const { return dir_.path(); }
  static constexpr const char* kUser = "app";
  static constexpr const char* kDb = "app";
  // Punctuation on purpose: it must survive URI encoding and key=value quoting.
  static constexpr const char* kPassword = "Pw-s3cr3t!x9";
  // postgresql://app:<password>@127.0.0.1:<port>/app (or with another password).
  std::string dsn() const;
  std::string dsn_with_password(const std::string& pw) const;
  std::string dsn_without_password() const;

  // As the superuser over the unix socket, independent of the code under test. Rows of text
  // (NULL as ""); throws std::runtime_error on an SQL error.
  std::vector<std::vector<std::string>> sql(const std::string& statement,
                                            const std::string& db = kDb) const;
  std::string scalar(const std::string& statement, const std::string& db = kDb) const;
  void stop();

 private:
  TempDir dir_;
  std::string bin_, data_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace rb::test
