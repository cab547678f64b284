#!/usr/bin/env bash
# Whole-process timing: `runbook exec --dry-run` of a 20-step runbook (cold start: process,
# Lua state, journal open, 20 steps with a probe and a change each), against bash running the
# equivalent checks. Prints milliseconds per run and the ratio. Usage: bench/cold_start.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RUNBOOK_BIN:-$root/build/runbook}
runs=${1:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/app/config"
echo a=1 > "$work/app/config/app.ini"
{
  echo 'runbook { name = "twenty", version = "1.0.0", params = { root = { type = "path" } } }'
  for i in $(seq 1 20); do
    echo "step('step $i', function(p)"
    echo "  if fs.exists(p.root .. '/config/app.ini') then"
    echo "    fs.write(p.root .. '/out-$i.txt', 'step $i')"
    echo "  end"
    echo "end)"
  done
} > "$work/twenty.lua"
{
  echo '#!/usr/bin/env bash'
  for i in $(seq 1 20); do
    echo "if [ -e \"\$1/config/app.ini\" ]; then echo would write \"\$1/out-$i.txt\"; fi"
  done
} > "$work/twenty.sh"
export RUNBOOK_JOURNAL="$work/journal.db"
"$bin" exec "$work/twenty.lua" --dry-run -p root="$work/app" >/dev/null  # warm the page cache
ms() { date +%s%N; }
t0=$(ms); for _ in $(seq "$runs"); do "$bin" exec "$work/twenty.lua" --dry-run -p root="$work/app" >/dev/null; done; t1=$(ms)
for _ in $(seq "$runs"); do bash "$work/twenty.sh" "$work/app" >/dev/null; done; t2=$(ms)
rb=$(( (t1 - t0) / runs / 1000 ))
sh=$(( (t2 - t1) / runs / 1000 ))
echo "runbook exec --dry-run, 20 steps: ${rb} us per run"
echo "bash, same 20 checks:             ${sh} us per run"
awk -v a="$rb" -v b="$sh" 'BEGIN { printf "ratio runbook/bash: %.1f\n", a / b }'
