// Registration entry points, one per effect module (one file each). all.cc calls them all.
#pragma once
#include "dispatch/registry.h"

namespace rb {

void register_exec(Registry& r);     // exec
void register_fs(Registry& r);       // fs.*
void register_fs_logs(Registry& r);  // fs.grep, fs.tail
void register_http(Registry& r);     // http.*
void register_basic(Registry& r);    // sleep, confirm, env.get, time.now
void register_git(Registry& r);      // git.*
void register_service(Registry& r);  // service.*, proc.*
void register_pkg(Registry& r);      // pip.*, npm.*
void register_pg(Registry& r);       // pg.*
void register_sqlite(Registry& r);   // sqlite.*
void register_redis(Registry& r);    // redis.*
void register_notify(Registry& r);   // notify.webhook, notify.email
void register_compose(Registry& r);  // compose.set_image

}  // namespace rb
