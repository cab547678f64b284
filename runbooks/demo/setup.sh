#!/usr/bin/env bash
# Stands up the demo environment: a small production look-alike that runbooks/emergency.lua rolls
# back. In DIR (default /tmp/runbook-demo):
#   app/       git repository: v1.0.0 (good, tagged last-good), then v1.1.0 (bad) checked out
#   config/    app.json        data/app.db (SQLite)        logs/  run/  backups/
# and the app itself, serving v1.1.0 on 127.0.0.1:PORT (default 18080): /health answers 503.
#
#   usage: runbooks/demo/setup.sh [DIR] [PORT]        RUNBOOK_BIN=path/to/runbook to choose the binary
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${RUNBOOK_DEMO_DIR:-/tmp/runbook-demo}}
port=${2:-${RUNBOOK_DEMO_PORT:-18080}}
runbook=${RUNBOOK_BIN:-$here/../../build/runbook}
health="http://127.0.0.1:$port/health"
[ -x "$runbook" ] || { echo "setup: no runbook binary at $runbook (build first, or set RUNBOOK_BIN)" >&2; exit 2; }

# A demo from an earlier setup is stopped and replaced; anything else in the way is left alone.
if [ -e "$dir" ]; then
  if [ ! -f "$dir/.runbook-demo" ]; then
    echo "setup: $dir exists and is not a runbook demo; choose another directory" >&2
    exit 2
  fi
  if [ -f "$dir/run/demo-app.pid" ]; then
    "$runbook" exec "$here/app.lua" --param action=stop --param "app=$dir/app" --param "health=$health" \
      --journal "$dir/setup-journal.db" >/dev/null || true
  fi
  rm -rf "$dir"
fi
mkdir -p "$dir"/{app,config,data,logs,run,backups}
touch "$dir/.runbook-demo"

# The code: a good release, then a bad one deployed on top of it.
g() { git -C "$dir/app" -c user.name="Demo Deployer" -c user.email=deploy@demo.invalid \
        -c init.defaultBranch=main -c commit.gpgsign=false -c tag.gpgsign=false "$@"; }
g init -q
cp "$here/app.py" "$dir/app/app.py"
printf 'flask-free demo app; see app.py\n' > "$dir/app/README"
g add -A && g commit -qm "Release 1.0.0" && g tag -a v1.0.0 -m "v1.0.0" && g tag last-good
# The bad release: it expects a column that the database does not have (a migration that never
# ran), so every health check fails.
python3 - "$dir/app/app.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('VERSION = "1.0.0"', 'VERSION = "1.1.0"')
s = s.replace('FROM projects"', 'FROM projects WHERE archived = 0"')
open(p, "w").write(s)
PY
g commit -qam "Release 1.1.0: only count live projects" && g tag -a v1.1.0 -m "v1.1.0"

# Config and data, outside the repository as in production.
printf '{\n  "env": "demo",\n  "port": %s,\n  "feature_flags": { "new_dashboard": true }\n}\n' "$port" \
  > "$dir/config/app.json"
python3 - "$dir/data/app.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT)")
db.executemany("INSERT INTO projects (name, state) VALUES (?, ?)",
               [("alpha", "live"), ("beta", "live"), ("gamma", "paused")])
db.commit()
PY

# The app, started the way production runs it: a supervised process, through runbook itself.
"$runbook" exec "$here/app.lua" --param "app=$dir/app" --param "health=$health" \
  --journal "$dir/setup-journal.db" >/dev/null
code=$(python3 -c 'import sys,urllib.request,urllib.error
try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e: print(e.code)' "$health")
echo "demo: v1.1.0 deployed in $dir, serving $health → HTTP $code"
