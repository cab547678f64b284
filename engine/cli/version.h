// `runbook --version`: the version, the commit it was built from and the libraries it runs with.
#pragma once
#include <string>

namespace rb::cli {

// The commit the executable was built from ("0123456789ab", "...-dirty", "unknown"), defined in
// build/generated/build_info.cc, which only the runbook executable compiles (cmake/build_info.cmake).
extern const char kBuildCommit[];
// main() hands it over; without it (a test linking the engine) the commit is "unknown".
void set_build_commit(const char* commit);

// "runbook 0.1.0 (commit 0123456789ab)" and one line per library: Lua, SQLite, libcurl, libgit2,
// libpq, hiredis (the versions loaded at run time where the library reports one).
std::string version_text();

}  // namespace rb::cli
