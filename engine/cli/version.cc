#include "cli/version.h"

#include <curl/curl.h>
#include <git2.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <lua.hpp>

namespace rb::cli {
namespace {
const char* g_commit = "unknown";
}

void set_build_commit(const char* commit) {
  if (commit && *commit) g_commit = commit;
}

std::string version_text() {
  std::string t = std::string("runbook ") + RUNBOOK_VERSION + " (commit " + g_commit + ")\n";
  // Lua and hiredis report no run-time version: theirs is the one compiled against.
  t += std::string(LUA_RELEASE) + "\n";
  t += std::string("SQLite ") + sqlite3_libversion() + "\n";
  const curl_version_info_data* cv = curl_version_info(CURLVERSION_NOW);
  t += std::string("libcurl ") + (cv && cv->version ? cv->version : LIBCURL_VERSION) + "\n";
  int major = 0, minor = 0, rev = 0;
  git_libgit2_version(&major, &minor, &rev);
  t += "libgit2 " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(rev) + "\n";
  // PQlibVersion: major * 10000 + minor since PostgreSQL 10.
  int pq = PQlibVersion();
  t += "libpq " + std::to_string(pq / 10000) + "." + std::to_string(pq % 10000) + "\n";
  t += "hiredis " + std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) + "." +
       std::to_string(HIREDIS_PATCH) + "\n";
  return t;
}

}  // namespace rb::cli
