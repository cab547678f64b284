#include "dispatch/args.h"

#include <cmath>

#include "core/error.h"
#include "core/unknown.h"

namespace rb {

const char* arg_type_name(ArgType t) {
  switch (t) {
    case ArgType::String: return "string";
    case ArgType::Int: return "integer";
    case ArgType::Number: return "number";
    case ArgType::Bool: return "boolean";
    case ArgType::Duration: return "duration";
    case ArgType::Path: return "path";
    case ArgType::Url: return "url";
    case ArgType::List: return "list";
    case ArgType::Map: return "table";
    case ArgType::Any: return "any";
  }
  return "?";
}

namespace {

std::string got(const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() > 40) s = s.substr(0, 40) + "…";
    return "\"" + s + "\"";
  }
  if (v.is_number_integer()) return "integer " + v.dump();
  if (v.is_number()) return "number " + v.dump();
  if (v.is_boolean()) return "boolean";
  if (v.is_array()) return "list";
  if (v.is_object()) return "table";
  return "nil";
}

[[noreturn]] void bad(const std::string& effect, const std::string& arg, const std::string& why) {
  throw ArgError("bad argument '" + arg + "' to '" + effect + "' (" + why + ")");
}

void check_type(const std::string& effect, const ArgSpec& spec, json& v) {
  auto expected = [&](const char* what) {
    bad(effect, spec.name, std::string(what) + " expected, got " + got(v));
  };
  // A rehearsal's unknown (the answer of a probe it could not predict) fits any type: the
  // dispatcher plans such a call without looking at it, and refuses it live.
  if (is_unknown(v)) return;
  switch (spec.type) {
    case ArgType::String:
      if (v.is_number()) v = v.dump();  // numbers coerce, as Lua does
      if (!v.is_string()) expected("string");
      break;
    case ArgType::Path:
      if (!v.is_string() || v.get<std::string>().empty()) expected("path");
      break;
    case ArgType::Url: {
      if (!v.is_string()) expected("url");
      auto s = v.get<std::string>();
      // "***": a secret parameter as a replay sees it (secrets are never journaled); the call
      // is answered from the journal, and a live call with it fails at the transport.
      if (s.find("://") == std::string::npos && s != "***") expected("url");
      break;
    }
    case ArgType::Int:
      if (v.is_number_float()) {
        // 3.0 is an integer; NaN, 2^63 and beyond are not (the cast would be undefined).
        double d = v.get<double>();
        if (std::isfinite(d) && d >= -9.2e18 && d <= 9.2e18 && d == std::trunc(d))
          v = static_cast<int64_t>(d);
      }
      if (!v.is_number_integer()) expected("integer");
      break;
    case ArgType::Number:
      if (!v.is_number()) expected("number");
      if (v.is_number_float() && !std::isfinite(v.get<double>())) expected("finite number");
      break;
    case ArgType::Bool:
      if (!v.is_boolean()) expected("boolean");
      break;
    case ArgType::Duration:
      if (v.is_number() ? !duration_from_seconds(v.get<double>())  // seconds
                        : !v.is_string() || !parse_duration(v.get<std::string>()))
        bad(effect, spec.name, "duration like \"30s\" expected, got " + got(v));
      break;
    case ArgType::List:
      if (v.is_object() && v.empty()) v = json::array();  // {} is an empty list too
      if (!v.is_array()) expected("list");
      break;
    case ArgType::Map:
      if (v.is_array() && v.empty()) v = json::object();
      if (!v.is_object()) expected("table");
      break;
    case ArgType::Any:
      break;
  }
}

}  // namespace

Args validate_args(const std::string& effect, const std::vector<ArgSpec>& specs, json values) {
  if (values.is_null()) values = json::object();
  for (auto it = values.begin(); it != values.end(); ++it) {
    bool known = false;
    for (const auto& s : specs) known = known || s.name == it.key();
    if (!known) {
      std::string names;
      for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
      bad(effect, it.key(), "unknown argument; '" + effect + "' takes " +
                                (names.empty() ? std::string("no arguments") : names));
    }
  }
  json out = json::object();
  for (const auto& s : specs) {
    if (!values.contains(s.name) || values[s.name].is_null()) {
      if (s.required) bad(effect, s.name, std::string(arg_type_name(s.type)) + " expected, got nil");
      if (!s.def.is_null()) out[s.name] = s.def;
      continue;
    }
    json v = values[s.name];
    check_type(effect, s, v);
    out[s.name] = std::move(v);
  }
  return Args(effect, std::move(out));
}

const json& Args::at(const std::string& k) const {
  static const json null_value = nullptr;
  auto it = v_.find(k);
  return it == v_.end() ? null_value : *it;
}

std::string Args::str(const std::string& k) const {
  const json& v = at(k);
  if (!v.is_string()) bad(effect_, k, "string expected, got " + got(v));
  return v.get<std::string>();
}

std::string Args::str_or(const std::string& k, const std::string& def) const {
  return has(k) ? str(k) : def;
}

int64_t Args::integer(const std::string& k) const {
  const json& v = at(k);
  if (!v.is_number()) bad(effect_, k, "integer expected, got " + got(v));
  return v.get<int64_t>();
}

int64_t Args::integer_or(const std::string& k, int64_t def) const {
  return has(k) ? integer(k) : def;
}

double Args::number(const std::string& k) const {
  const json& v = at(k);
  if (!v.is_number()) bad(effect_, k, "number expected, got " + got(v));
  return v.get<double>();
}

bool Args::boolean(const std::string& k, bool def) const {
  const json& v = at(k);
  if (v.is_null()) return def;
  if (!v.is_boolean()) bad(effect_, k, "boolean expected, got " + got(v));
  return v.get<bool>();
}

Millis Args::duration(const std::string& k) const {
  const json& v = at(k);
  if (v.is_number())
    if (auto d = duration_from_seconds(v.get<double>())) return *d;
  if (v.is_string())
    if (auto d = parse_duration(v.get<std::string>())) return *d;
  bad(effect_, k, "duration like \"30s\" expected, got " + got(v));
}

Millis Args::duration_or(const std::string& k, Millis def) const {
  return has(k) ? duration(k) : def;
}

std::vector<std::string> Args::strings(const std::string& k) const {
  std::vector<std::string> out;
  const json& v = at(k);
  if (v.is_null()) return out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) bad(effect_, k, "list of strings expected, got " + got(v));
  for (const auto& e : v) {
    if (e.is_string())
      out.push_back(e.get<std::string>());
    else if (e.is_number())
      out.push_back(e.dump());
    else
      bad(effect_, k, "list of strings expected, got an element " + got(e));
  }
  return out;
}

std::map<std::string, std::string> Args::string_map(const std::string& k) const {
  std::map<std::string, std::string> out;
  const json& v = at(k);
  if (v.is_null()) return out;
  if (!v.is_object()) bad(effect_, k, "table of strings expected, got " + got(v));
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->is_string())
      out[it.key()] = it->get<std::string>();
    else if (it->is_number() || it->is_boolean())
      out[it.key()] = it->dump();
    else
      bad(effect_, k, "table of strings expected, got " + got(*it) + " at '" + it.key() + "'");
  }
  return out;
}

}  // namespace rb
