// Argument schemas and validated argument values. A schema is declared once per effect; the same
// declaration validates calls, documents the primitive in `runbook api`, and marks secrets.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"

namespace rb {

enum class ArgType { String, Int, Number, Bool, Duration, Path, Url, List, Map, Any };
const char* arg_type_name(ArgType t);

struct ArgSpec {
  std::string name;
  ArgType type = ArgType::String;
  bool required = false;
  json def = nullptr;  // default value, null for none
  // A secret's value is registered with the dispatcher's Redactor: it never reaches a log line,
  // the journal or a report, and no child process gets it in argv (/proc/PID/cmdline is readable
  // by every user): run_process_checked refuses such a spawn, exec{} too unless
  // allow_secret_argv = true. Effects hand secrets to children by environment, stdin, or a 0600
  // file (os::PrivateFile).
  bool secret = false;
  std::string doc;
};

// Validated arguments. Accessors assume validation passed (types are right); they still throw
// ArgError naming the effect and argument if a caller asks for the wrong thing.
class Args {
 public:
  Args() = default;
  Args(std::string effect, json values) : effect_(std::move(effect)), v_(std::move(values)) {}

  const json& raw() const { return v_; }
  bool has(const std::string& k) const { return v_.contains(k) && !v_[k].is_null(); }
  std::string str(const std::string& k) const;
  std::string str_or(const std::string& k, const std::string& def) const;
  int64_t integer(const std::string& k) const;
  int64_t integer_or(const std::string& k, int64_t def) const;
  double number(const std::string& k) const;
  bool boolean(const std::string& k, bool def = false) const;
  Millis duration(const std::string& k) const;
  Millis duration_or(const std::string& k, Millis def) const;
  std::vector<std::string> strings(const std::string& k) const;  // a list of strings
  std::map<std::string, std::string> string_map(const std::string& k) const;
  const json& at(const std::string& k) const;
  const std::string& effect() const { return effect_; }

 private:
  std::string effect_;
  json v_ = json::object();
};

// Checks `values` (an object) against `specs`: unknown names, missing required ones, types.
// Fills defaults. Throws ArgError "bad argument 'timeout' to 'http.get' (duration expected, got
// \"soon\")".
Args validate_args(const std::string& effect, const std::vector<ArgSpec>& specs, json values);

}  // namespace rb
