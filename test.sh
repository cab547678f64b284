#!/usr/bin/env bash
# Builds and runs every test (unit, primitives against real local servers, CLI end to end, the
# hostile corpus). With --all, also the slow suites CI runs: the whole suite again under
# ASan/UBSan (scripts/test-sanitize.sh, build-asan/) and each fuzz target for FUZZ_SECONDS
# (scripts/test-fuzz.sh, build-fuzz/). Other arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")"
all=0
if [ "${1:-}" = "--all" ]; then all=1; shift; fi
scripts/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 600 "$@")
if [ "$all" = 1 ]; then
  scripts/test-sanitize.sh
  scripts/test-fuzz.sh
fi
