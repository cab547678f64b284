#!/usr/bin/env bash
# How long the seed rollbacks take live, beside the fixed sleeps their documents wait. Runs the
# live seed tests (real git, pm2, PostgreSQL, Redis, local HTTP stand-ins for the apps' APIs) with
# gtest's XML output and prints the run times they record (record_run_time in tests/support).
# Usage: bench/seed_timings.sh [build dir, default build]
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$b/tests/runbooks_test" --gtest_filter='Runbooks.Live*:Seeds/LiveProcedure.*' --gtest_output="xml:$out/runbooks.xml" >/dev/null
"$b/tests/redis_test" --gtest_filter='Redis.NodeApi*' --gtest_output="xml:$out/redis.xml" >/dev/null
"$b/tests/pg_script_test" --gtest_filter='NodeApi.SchemaMode*:NodeApi.RestoreMode*:NodeApi.DataMode*' --gtest_output="xml:$out/pg.xml" >/dev/null
"$b/tests/alembic_test" --gtest_filter='*ThroughPm2' --gtest_output="xml:$out/alembic.xml" >/dev/null
echo "| document | its fixed sleeps | runbook, live | run time |"
echo "|---|---|---|---|"
for f in "$out"/*.xml; do
  grep -o '<property name="[^"]*" value="[^"]*"' "$f" | sed -E 's/<property name="([^"]*)" value="([^"]*)"/\1|\2/'
done | sort | while IFS='|' read -r label took; do
  doc=${label%% *}
  seed=$(ls ../shared/seeds/"$doc"_*.txt 2>/dev/null | head -1 || true)
  sleeps="?"
  if [ -n "$seed" ]; then
    sleeps=$( (grep -oE '\bsleep [0-9]+' "$seed" || true) | awk '{s+=$2} END {printf "%d (%d s)", NR, s}')
  fi
  echo "| $doc | $sleeps | ${label#* } | $took |"
done
