#include "dispatch/registry.h"

#include <stdexcept>

namespace rb {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Probe: return "probe";
    case Kind::Change: return "change";
    case Kind::Wait: return "wait";
    case Kind::Input: return "input";
  }
  return "?";
}

void Registry::add(Effect e) {
  if (e.name.empty() || !e.apply) throw std::logic_error("effect without name or apply");
  if (effects_.count(e.name)) throw std::logic_error("effect registered twice: " + e.name);
  bool has_check = false;
  for (const auto& a : e.args) has_check = has_check || a.name == "check";
  if (e.checkable && !has_check)
    e.args.push_back(ArgSpec{"check", ArgType::Bool, false, true, false,
                             "false: a failure returns its result (ok = false, error) instead "
                             "of raising"});
  if (e.checkable && !e.results.empty()) {
    for (const char* f : {"ok", "error"}) {
      bool has = false;
      for (const auto& r : e.results) has = has || r.name == f;
      if (!has)
        e.results.push_back(ResultField{f, std::string(f) == "ok" ? "boolean" : "string",
                                        std::string(f) == "ok" ? "false when the call failed (check = false)"
                                                               : "the failure (check = false)"});
    }
  }
  std::string name = e.name;
  effects_[name] = std::make_unique<Effect>(std::move(e));
}

bool generic_result_field(const std::string& name) {
  return name == "ok" || name == "error" || name == "planned" || name == "verified" ||
         name == "value";
}

std::string undeclared_result_field(const Effect& e, const json& result) {
  if (!result.is_object()) return "";
  for (const auto& f : e.results)
    if (f.name == "*") return "";
  for (const auto& [key, _] : result.items()) {
    if (generic_result_field(key)) continue;
    bool declared = false;
    for (const auto& f : e.results) declared = declared || f.name == key;
    if (!declared) return key;
  }
  return "";
}

const Effect* Registry::find(const std::string& name) const {
  auto it = effects_.find(name);
  return it == effects_.end() ? nullptr : it->second.get();
}

std::vector<const Effect*> Registry::all() const {
  std::vector<const Effect*> out;
  for (const auto& [_, e] : effects_) out.push_back(e.get());
  return out;
}

}  // namespace rb
