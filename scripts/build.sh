#!/usr/bin/env bash
# Configures and builds into build/ (RelWithDebInfo, -j2 on this 2-core machine).
# RUNBOOK_WERROR=ON makes warnings errors (CI sets it; a user's or packager's build does not).
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keyed on paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNBOOK_WERROR="${RUNBOOK_WERROR:-OFF}" -DRUNBOOK_LLD=ON >/dev/null
cmake --build build -j"${JOBS:-2}"
