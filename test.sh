#!/usr/bin/env bash
# Builds and runs every test (unit, primitives against real local servers, CLI end to end).
set -euo pipefail
cd "$(dirname "$0")"
scripts/build.sh
cd build
ctest --output-on-failure -j2 --timeout 600 "$@"
