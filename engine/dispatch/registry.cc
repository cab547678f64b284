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
  std::string name = e.name;
  effects_[name] = std::make_unique<Effect>(std::move(e));
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
