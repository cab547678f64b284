// The one JSON convention of the command line (docs/json.md): whatever the subcommand, --json
// prints one JSON object per line, each beginning with "schema" (kJsonSchema) and "type" (what
// the line is: run_begin, effect, run, stats, ...). A consumer reads lines, dispatches on
// "type", and refuses a schema it does not know.
#pragma once
#include <cstdio>
#include <string>

#include "core/json.h"

namespace rb::cli {

constexpr int kJsonSchema = 1;

// {"schema": 1, "type": type, ...the members of fields}.
json typed(const std::string& type, const json& fields = json::object());
// An event built as {"event": name, ...}: the name becomes its "type".
json typed_event(const json& ev);
// Prints typed_event(ev) on one line (invalid UTF-8 replaced, never thrown) and flushes.
void print_event(const json& ev, std::FILE* out = stdout);
// Prints typed(type, fields) on one line.
void print_typed(const std::string& type, const json& fields, std::FILE* out = stdout);

}  // namespace rb::cli
