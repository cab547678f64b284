#include "effects/effects.h"

namespace rb {

void register_git(Registry& r) { (void)r; }

}  // namespace rb
