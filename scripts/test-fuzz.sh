#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) into build-fuzz/ and runs each for
# FUZZ_SECONDS (default 60) from its seed corpus. Findings are written to build-fuzz/tests/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "test-fuzz: clang++ not found: apt-get install clang" >&2; exit 1; }
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNBOOK_FUZZ=ON -DRUNBOOK_TESTS=OFF \
  -DRUNBOOK_BENCH=OFF -DRUNBOOK_FUZZ_SECONDS="${FUZZ_SECONDS:-60}" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DRUNBOOK_LLD=ON >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target fuzz
export ASAN_OPTIONS="exitcode=86:abort_on_error=0:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
cd build-fuzz
ctest -L fuzz --output-on-failure -j"${JOBS:-2}" "$@"
