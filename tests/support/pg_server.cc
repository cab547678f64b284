#include "support/pg_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "os/process.h"

namespace rb::test {
namespace fs = std::filesystem;

namespace {

const char* kBin = "/usr/lib/postgresql/15/bin";

os::ProcessResult as_postgres(const std::vector<std::string>& argv, const std::string& cwd, int timeout_s = 60) {
  os::ProcessSpec spec;
  spec.argv = {"runuser", "-u", "postgres", "--"};
  spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());
  spec.cwd = cwd;
  spec.timeout = std::chrono::seconds(timeout_s);
  spec.detached = true;  // `pg_ctl start` leaves the server running: it is meant to
  // The server must not pick up a test's PG* settings.
  spec.unset_env = {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"};
  return os::run_process(spec);
}

}  // namespace

std::string PgServer::unavailable() {
  if (::geteuid() != 0) return "the PostgreSQL tests start a server as the postgres user and need root";
  if (os::which("runuser").empty()) return "runuser is not installed";
  if (!::getpwnam("postgres")) return "there is no postgres user";
  for (const char* tool : {"initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore"})
    if (::access((std::string(kBin) + "/" + tool).c_str(), X_OK) != 0)
      return std::string(kBin) + "/" + tool + " is missing";
  return "";
}

PgServer::PgServer() : bin_(kBin), data_(dir_ / "data"), port_(free_port()) {
  struct passwd* pw = ::getpwnam("postgres");
  if (!pw) throw std::runtime_error("no postgres user");
  if (::chown(dir_.path().c_str(), pw->pw_uid, pw->pw_gid) != 0)
    throw std::runtime_error("cannot chown " + dir_.path() + " to postgres");
  write_file(dir_ / "pwfile", "unused-superuser-password\n");
  ::chown((dir_ / "pwfile").c_str(), pw->pw_uid, pw->pw_gid);
  // Local (socket) connections trusted for the fixture; TCP needs the role's password, so the
  // tests exercise real password authentication.
  auto init = as_postgres({bin_ + "/initdb", "-D", data_, "-U", "postgres", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
                           "-E", "UTF8", "--locale=C"},
                          dir_.path());
  if (init.code != 0) throw std::runtime_error("initdb failed: " + init.stderr_text + init.stdout_text);
  auto start = as_postgres({bin_ + "/pg_ctl", "-D", data_, "-l", dir_ / "server.log", "-w", "-t", "60",
                            "-o",
                            "-p " + std::to_string(port_) + " -c listen_addresses=127.0.0.1 -k " + dir_.path() +
                                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                            "start"},
                           dir_.path(), 90);
  if (start.code != 0)
    throw std::runtime_error("pg_ctl start failed: " + start.stderr_text + start.stdout_text + "\n" +
                             read_file(dir_ / "server.log"));
  running_ = true;
  sql(std::string("CREATE ROLE ") + kUser + " LOGIN PASSWORD '" + kPassword + "'", "postgres");
  sql(std::string("CREATE DATABASE ") + kDb + " OWNER " + kUser, "postgres");
}

PgServer::~PgServer() { stop(); }

void PgServer::stop() {
  if (!running_) return;
  as_postgres({bin_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "stop"}, dir_.path());
  running_ = false;
}

std::string PgServer::dsn() const { return dsn_with_password(kPassword); }

std::string PgServer::dsn_with_password(const std::string& pw) const {
  // '!' and '-' need no percent-encoding in a URI's userinfo.
  return std::string("postgresql://") + kUser + ":" + pw + "@127.0.0.1:" + std::to_string(port_) + "/" + kDb;
}

std::string PgServer::dsn_without_password() const {
  return std::string("postgresql://") + kUser + "@127.0.0.1:" + std::to_string(port_) + "/" + kDb;
}

std::vector<std::vector<std::string>> PgServer::sql(const std::string& statement, const std::string& db) const {
  std::string conninfo = "host=" + dir_.path() + " port=" + std::to_string(port_) +
                         " user=postgres dbname=" + db + " connect_timeout=10";
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("test connection failed: " + e);
  }
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(c, statement.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string e = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error("test SQL failed: " + statement + ": " + e);
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
    rows.push_back(std::move(row));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

std::string PgServer::scalar(const std::string& statement, const std::string& db) const {
  auto rows = sql(statement, db);
  if (rows.empty() || rows[0].empty()) throw std::runtime_error("no value from: " + statement);
  return rows[0][0];
}

}  // namespace rb::test
