#include "effects/effects.h"

namespace rb {

void register_pg(Registry& r) { (void)r; }

}  // namespace rb
