// Small helpers shared by effect modules: argument declarations and running a child process
// with the run's deadline and Ctrl-C honoured.
#pragma once
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "dispatch/args.h"
#include "dispatch/context.h"
#include "dispatch/registry.h"
#include "os/process.h"

namespace rb {

inline ArgSpec req(std::string name, ArgType t, std::string doc) {
  return ArgSpec{std::move(name), t, true, nullptr, false, std::move(doc)};
}
inline ArgSpec opt(std::string name, ArgType t, std::string doc, json def = nullptr) {
  return ArgSpec{std::move(name), t, false, std::move(def), false, std::move(doc)};
}
// What to redact of a text marked secret (fs.read/fs.write{ secret = true }): the whole text,
// and in `KEY=value` lines (env files, ini) the values whose keys name a secret (PASSWORD,
// TOKEN, SECRET, KEY, CREDENTIAL, AUTH, DSN) or that carry a URL password.
std::vector<std::string> secrets_in_text(const std::string& text);

inline ArgSpec secret(ArgSpec a) {
  a.secret = true;
  return a;
}

inline void add(Registry& r, Effect e) { r.add(std::move(e)); }

// ArgError "bad argument 'arg' to 'effect' (why)", for checks the ArgSpec types cannot express.
[[noreturn]] void bad_arg(const std::string& effect, const std::string& arg, const std::string& why);
[[noreturn]] void bad_arg(const Args& a, const std::string& arg, const std::string& why);

// A field of a preview result, for `planned`: the preview may be missing or a plain string.
json pv_or(const json& pv, const std::string& key, json def);
std::string pv_str(const json& pv, const std::string& key, const std::string& def);

// Absolute and normalized (no . or ..); symlinks are not resolved.
std::string abs_path(const std::string& p);
// Whether anything is at `p`, a dangling symlink included.
bool exists(const std::string& p);
// "<name>.bak-YYYYmmdd-HHMMSS" (local time): the name fs.backup, sqlite.backup and fs.latest share.
std::string stamped_backup_name(const std::string& name);

// "512 B", "3.4 KiB", "1.2 GiB".
std::string size_text(uint64_t n);
// "1 file", "3 files".
std::string plural(int64_t n, const std::string& one, const std::string& many);
// %XX escapes of a URL part decoded; a malformed escape is kept as it is.
std::string percent_decode(const std::string& s);

// The process's result as a Lua-friendly table: { code, stdout, stderr, duration }.
json process_json(const os::ProcessResult& r);

// Runs `spec` bounded by the step deadline, stopping it on Ctrl-C. Throws EffectError when it
// cannot start, times out, or (check) exits non-zero: "'pip' exited 1: <last stderr line>".
// Refuses (EffectError, before anything starts) an argv that holds a registered secret: argv is
// world-readable in /proc/PID/cmdline. Only exec{ allow_secret_argv = true } passes
// secret_argv_ok.
os::ProcessResult run_process_checked(EffectContext& ctx, os::ProcessSpec spec, bool check = true,
                                      const std::string& progress_label = "",
                                      bool secret_argv_ok = false);

// The index (0-based) of the first argv element that holds a registered secret, or -1.
long secret_argv_index(const EffectContext& ctx, const std::vector<std::string>& argv);

// The last non-empty lines of a text, for error messages.
std::string tail_lines(const std::string& text, size_t lines = 3, size_t max_chars = 400);

}  // namespace rb
