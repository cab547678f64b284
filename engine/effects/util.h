// Small helpers shared by effect modules: argument declarations and running a child process
// with the run's deadline and Ctrl-C honoured.
#pragma once
#include <string>

#include "core/error.h"
#include "core/json.h"
#include "dispatch/args.h"
#include "dispatch/context.h"
#include "os/process.h"

namespace rb {

inline ArgSpec req(std::string name, ArgType t, std::string doc) {
  return ArgSpec{std::move(name), t, true, nullptr, false, std::move(doc)};
}
inline ArgSpec opt(std::string name, ArgType t, std::string doc, json def = nullptr) {
  return ArgSpec{std::move(name), t, false, std::move(def), false, std::move(doc)};
}
inline ArgSpec secret(ArgSpec a) {
  a.secret = true;
  return a;
}

// The process's result as a Lua-friendly table: { code, stdout, stderr, duration }.
json process_json(const os::ProcessResult& r);

// Runs `spec` bounded by the step deadline, stopping it on Ctrl-C. Throws EffectError when it
// cannot start, times out, or (check) exits non-zero: "'pip' exited 1: <last stderr line>".
os::ProcessResult run_process_checked(EffectContext& ctx, os::ProcessSpec spec, bool check = true,
                                      const std::string& progress_label = "");

// The last non-empty lines of a text, for error messages.
std::string tail_lines(const std::string& text, size_t lines = 3, size_t max_chars = 400);

}  // namespace rb
