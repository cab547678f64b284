// pip.* and npm.*: pinning, snapshotting and reinstalling packages (pkg_pip.cc, pkg_npm.cc).
#include "effects/effects.h"
#include "effects/pkg_util.h"

namespace rb {

void register_pkg(Registry& r) {
  pkg::register_pip(r);
  pkg::register_npm(r);
}

}  // namespace rb
