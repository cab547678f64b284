#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# the whole suite under it: the tests spawn build-asan/runbook, the sanitized binary, as a child.
# SANITIZE_CXX/SANITIZE_CC pick the compiler (default g++/gcc; clang++/clang work too).
# Extra arguments go to ctest (-R hostile, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# -O1: the usual level for ASan, and quicker to build on two cores than -O2.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DRUNBOOK_SANITIZE=ON -DRUNBOOK_BENCH=OFF \
  -DCMAKE_CXX_COMPILER="${SANITIZE_CXX:-g++}" -DCMAKE_C_COMPILER="${SANITIZE_CC:-gcc}" -DRUNBOOK_LLD=ON >/dev/null
cmake --build build-asan -j"${JOBS:-2}"
# The same options are compiled in (tests/support/sanitizer_defaults.cc); set here too so that
# every process of the suite, helpers included, reports the same way.
export ASAN_OPTIONS="exitcode=86:abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:handle_abort=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
cd build-asan
# The live procedure matrix (Seeds/LiveProcedure, tests/runbooks_test.cc) spends its minutes in
# the fixture's venvs, pip, git and Python servers, not in runbook's code, whose paths the other
# Runbooks tests take under the sanitizers too; it runs in the release stage. SANITIZE_EXCLUDE=''
# runs it here as well.
exclude=${SANITIZE_EXCLUDE-LiveProcedure}
ctest --output-on-failure -j"${JOBS:-2}" --timeout 900 ${exclude:+-E "$exclude"} "$@"
