#!/bin/sh
# The Lua layer reaches the world only through the dispatcher: no file of engine/lua or
# engine/dispatch may include an OS-facing header (engine/os, engine/effects) or a client library.
set -eu
root=$1
bad=$(grep -nE '#include *[<"](os/|effects/|curl/|git2|hiredis|libpq|sys/socket)' \
      "$root"/engine/lua/*.cc "$root"/engine/lua/*.h "$root"/engine/dispatch/*.cc "$root"/engine/dispatch/*.h || true)
if [ -n "$bad" ]; then
  echo "layering violation: the Lua layer and the dispatcher must not include OS-facing headers:"
  echo "$bad"
  exit 1
fi
# No shell anywhere in the engine: commands are argv.
bad=$(grep -nE '\b(system|popen)\s*\(' "$root"/engine -r || true)
if [ -n "$bad" ]; then echo "system()/popen() found:"; echo "$bad"; exit 1; fi
echo "layering ok"
