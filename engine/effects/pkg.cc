#include "effects/effects.h"

namespace rb {

void register_pkg(Registry& r) { (void)r; }

}  // namespace rb
