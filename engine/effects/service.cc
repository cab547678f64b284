#include "effects/effects.h"

namespace rb {

void register_service(Registry& r) { (void)r; }

}  // namespace rb
