#!/usr/bin/env bash
# Time from "start the app" to "healthy": runbooks/emergency.lua polls (http.wait_healthy) where
# the source procedures sleep a fixed time (000: sleep 10 + sleep 30; 002: sleep 15; 003: sleep 30)
# and then check once. Stands up the demo in a temp dir on a free port, runs the emergency rollback
# live N times (re-deploying the bad release between runs), and prints, per run, the whole
# rollback's wall time and the restart-to-healthy time, next to the fixed sleeps.
#   usage: bench/time_to_healthy.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RUNBOOK_BIN:-$root/build/runbook}
runs=${1:-5}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
health="http://127.0.0.1:$port/health"
cleanup() {
  "$bin" exec "$root/runbooks/demo/app.lua" -p action=stop -p "app=$work/demo/app" -p "health=$health" \
    --journal "$work/stop.db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
printf '%-4s %12s %18s\n' run "rollback(s)" "restart→healthy(s)"
for i in $(seq 1 "$runs"); do
  RUNBOOK_BIN="$bin" "$root/runbooks/demo/setup.sh" "$work/demo" "$port" >/dev/null
  "$bin" exec "$root/runbooks/emergency.lua" --json --journal "$work/journal.db" \
    -p "app=$work/demo/app" -p "health=$health" -p "config=$work/demo/config" \
    -p "db=$work/demo/data/app.db" -p "backups=$work/demo/backups" > "$work/events.jsonl"
  python3 - "$work/events.jsonl" "$i" <<'PY'
import json, sys
total = start_to_healthy = 0.0
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("type") == "run_end": total = e["duration_ms"] / 1000
    # emergency.lua starts the app once and then polls its health: those two effects.
    if e.get("type") == "effect" and e["name"] in ("service.start", "http.wait_healthy"):
        start_to_healthy += e["duration_ms"] / 1000
print(f"{sys.argv[2]:<4} {total:12.2f} {start_to_healthy:18.2f}")
PY
done
echo "fixed sleeps after a restart in the sources: 000 L1 10s+30s, 002 emergency script 15s, 003 complete-system 30s"
