// The reference of everything a runbook's sandbox offers besides the registry's primitives: the
// declarations (runbook{}, step{}, parameters), the Lua-side globals (log, json, run, time.format,
// wait, try, require, ...), the allowed subsets of Lua's standard library, what is absent, and
// the stdlib modules that document themselves with an `__api` table. `runbook api` renders it
// with the primitives; tests/api_ref_test.cc checks it against a live sandbox, so it cannot
// drift.
#pragma once
#include <string>
#include <vector>

#include "core/json.h"
#include "dispatch/registry.h"

namespace rb::cli {

struct DocArg {
  std::string name, type;
  bool required = false;
  std::string def;  // the default as Lua text ("\"60s\""), or ""
  std::string doc;
};

struct DocField {
  std::string name, type, doc;
};

// One documented name. kind: "function" | "table" | "value" | "declaration" | "absent"
// (primitives are the registry's and keep their own kinds). source: "sandbox" (built in C++),
// "prelude" (stdlib/prelude.lua), "lua" (Lua's standard library, as allowed), "stdlib" (a
// `require`d module).
struct DocEntry {
  std::string name;     // the Lua path: "log.info", "string.format", "_VERSION", "run.id"
  std::string kind;
  std::string source;
  std::string call;     // how it is called: "log.info(...)"; empty for tables and values
  std::string summary;
  std::vector<DocArg> args;  // named arguments / fields of the table it takes
  std::string returns;       // "nothing" when empty (functions)
  std::vector<DocField> results;
  std::string type;    // values: the Lua type ("string", "boolean", ...)
  std::string module;  // stdlib: the name given to require ("runbook.test")
};

// The built-in (non-primitive) globals, in the order of the reference.
const std::vector<DocEntry>& builtin_docs();

// A module under stdlib/runbook/*.lua, loaded as a runbook would (require "runbook.NAME").
struct StdlibModule {
  std::string file;     // stdlib/runbook/test.lua
  std::string module;   // runbook.test
  std::string error;    // why it could not be loaded ("" when it was)
  bool has_api = false;
  json api;                          // its __api table, as JSON
  std::vector<std::string> exports;  // function-valued keys not starting with '_', sorted
};

// Every stdlib/runbook/*.lua, sorted by name (bounded: at most 200 files, 10s each).
std::vector<StdlibModule> stdlib_modules();

// The entries of the stdlib modules that have an __api: one "module" entry, then its functions
// (named module.function: "runbook.test.case").
std::vector<DocEntry> stdlib_docs(const std::vector<StdlibModule>& mods);

// Tables of primitives ("fs", "git", ...) that builtin_docs does not describe already.
std::vector<DocEntry> primitive_table_docs(const Registry& r);

}  // namespace rb::cli
