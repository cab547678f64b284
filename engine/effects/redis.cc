#include "effects/effects.h"

namespace rb {

void register_redis(Registry& r) { (void)r; }

}  // namespace rb
