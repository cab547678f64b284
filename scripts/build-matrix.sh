#!/usr/bin/env bash
# Builds the runbook executable (no tests) with warnings as errors for each compiler and build
# type given as COMPILER:TYPE (default: gcc:Release clang:Release, which CI runs; `all` is the
# whole matrix: gcc and clang x Release, Debug, RelWithDebInfo, MinSizeRel), each in
# build-matrix/<compiler>-<type>/, and says which failed. The suite itself runs in build/ and
# build-asan/ (RelWithDebInfo, gcc); this checks that the other ways people and packagers build
# compile cleanly (GCC 12 at -O3 once raised a false -Wrestrict in engine/os/files.cc).
set -uo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
combos=("$@")
[ ${#combos[@]} = 0 ] && combos=(gcc:Release clang:Release)
if [ "${combos[0]}" = all ]; then
  combos=()
  for c in gcc clang; do for t in Release Debug RelWithDebInfo MinSizeRel; do combos+=("$c:$t"); done; done
fi
failed=()
for combo in "${combos[@]}"; do
  cc=${combo%%:*} type=${combo#*:}
  case $cc in
    gcc) cxx=g++ c=gcc ;;
    clang) cxx=clang++ c=clang ;;
    *) echo "build-matrix: unknown compiler '$cc' (gcc or clang)" >&2; exit 2 ;;
  esac
  dir=build-matrix/$cc-$type
  t0=$SECONDS
  if cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$c" \
       -DRUNBOOK_WERROR=ON -DRUNBOOK_TESTS=OFF -DRUNBOOK_BENCH=OFF -DRUNBOOK_LLD=ON >/dev/null &&
     cmake --build "$dir" -j"${JOBS:-2}" --target runbook >"$dir.log" 2>&1 &&
     "$dir/runbook" --version >/dev/null; then
    echo "build-matrix: $cc $type ok ($((SECONDS - t0)) s)"
  else
    echo "build-matrix: $cc $type FAILED ($((SECONDS - t0)) s); the last lines of $dir.log:" >&2
    tail -20 "$dir.log" >&2
    failed+=("$combo")
  fi
done
[ ${#failed[@]} = 0 ] || { echo "build-matrix: failed: ${failed[*]}" >&2; exit 1; }
