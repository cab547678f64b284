#include "effects/effects.h"

namespace rb {

void register_sqlite(Registry& r) { (void)r; }

}  // namespace rb
