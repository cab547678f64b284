#!/usr/bin/env bash
# Configures and builds into build/ (RelWithDebInfo, -j2 on this 2-core machine).
# RUNBOOK_WERROR=ON makes warnings errors (CI sets it; a user's or packager's build does not).
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keyed on paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# lld links the ~60 test executables about 4x faster than ld.bfd (one test: 8.7 s -> 2.2 s).
fastlink=()
if command -v ld.lld >/dev/null 2>&1; then
  fastlink=(-DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld)
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNBOOK_WERROR="${RUNBOOK_WERROR:-OFF}" "${fastlink[@]}" >/dev/null
cmake --build build -j"${JOBS:-2}"
