#!/usr/bin/env bash
# `runbook stats` and `runbook runs` on a journal of 100,000 runs (bench/journal_scale.py makes it:
# 8 runbooks, a year of a busy team's runs, 5 steps and 8 effects each, 15 % not succeeded).
# Target (issue 13): each under 300 ms. Timed with hyperfine; prints the mean of each command.
# Usage: bench/journal_scale.sh [runs-in-journal]   (RUNBOOK_BIN overrides build/runbook)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RUNBOOK_BIN:-$root/build/runbook}
n=${1:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
j=$work/journal.db
t0=$(date +%s)
/usr/bin/python3 "$root/bench/journal_scale.py" "$bin" "$j" "$n"
echo "journal of $n runs made in $(( $(date +%s) - t0 )) s: $(du -h "$j" | cut -f1)"
"$bin" stats --journal "$j" >/dev/null  # warm the page cache
hyperfine --warmup 2 --runs "${BENCH_RUNS:-10}" -N --export-json "$work/h.json" \
  "$bin stats --journal $j" \
  "$bin stats --journal $j --since 30d" \
  "$bin stats --journal $j --json" \
  "$bin runs --journal $j" \
  "$bin runs --journal $j --runbook emergency" \
  "$bin runs --journal $j --limit 1000 --json" >/dev/null
/usr/bin/python3 - "$work/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    cmd = r["command"].split(" --journal ")[0].rsplit("/", 1)[-1] + r["command"].split(".db", 1)[1]
    print("%-45s mean %6.1f ms  (min %6.1f, max %6.1f)%s" % (cmd, r["mean"] * 1000, r["min"] * 1000,
          r["max"] * 1000, "" if r["mean"] < 0.3 else "   OVER 300 ms"))
PY
