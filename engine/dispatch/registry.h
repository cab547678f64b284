// The one list of effects. `runbook api`, the Lua bindings and the dispatcher all read it, so the
// reference cannot drift from what runs.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dispatch/effect.h"

namespace rb {

class Registry {
 public:
  // Throws std::logic_error on a duplicate name: two effects with one name is a build defect.
  void add(Effect e);
  const Effect* find(const std::string& name) const;
  std::vector<const Effect*> all() const;  // sorted by name

 private:
  std::map<std::string, std::unique_ptr<Effect>> effects_;
};

// Fields the dispatcher adds to any table result: ok and error (check = false), planned (dry-run),
// verified (resume), value (a failure of a non-table result).
bool generic_result_field(const std::string& name);
// The first field of `result` (a table) that `e` does not declare in e.results, or "" when all
// are declared (or the result is not a table, or e declares a "*" map). Test builds check every
// live result with it (dispatcher.cc).
std::string undeclared_result_field(const Effect& e, const json& result);

// The registry with every effect of the build (engine/effects/all.cc).
const Registry& builtin_registry();

}  // namespace rb
