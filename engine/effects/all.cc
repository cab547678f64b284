// The single list of effect modules in this build.
#include "effects/effects.h"

namespace rb {

const Registry& builtin_registry() {
  static const Registry registry = [] {
    Registry r;
    register_exec(r);
    register_fs(r);
    register_fs_logs(r);
    register_http(r);
    register_basic(r);
    register_git(r);
    register_service(r);
    register_pkg(r);
    register_pg(r);
    register_sqlite(r);
    register_redis(r);
    register_notify(r);
    register_compose(r);
    return r;
  }();
  return registry;
}

}  // namespace rb
