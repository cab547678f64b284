#!/usr/bin/env bash
# The anchors' 20-step rollback, as a runbook and as the bash it replaces, on the same scenario,
# alternately, with hyperfine (each run gets a fresh copy of the scenario from --prepare):
#   a health check, take a lock, back up 50 config files, record the commit and tag it, check out
#   the previous commit, deploy a file, 10 health checks, a line in the rollback log, unlock.
# Prints each one's mean wall time, the ratio runbook / bash, and the peak memory of each.
# Target (issue 13): the runbook at most 0.2 x bash's wall time, at most 16 MiB peak.
# Usage: bench/vs_bash.sh [runs]      (RUNBOOK_BIN overrides build/runbook)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RUNBOOK_BIN:-$root/build/runbook}
runs=${1:-20}
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/www"; echo ok > "$work/www/health"
/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
srv=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/health"

# The scenario: an app in git with two releases, 50 config files, a release file to deploy.
seed=$work/seed
mkdir -p "$seed/config" "$seed/release" "$seed/deploy"
for i in $(seq 50); do echo "key$i=value$i" > "$seed/config/app$i.conf"; done
echo 'print("v1")' > "$seed/release/app.py"
git -C "$seed" init -q && git -C "$seed" -c user.email=b@x -c user.name=b add -A &&
  git -C "$seed" -c user.email=b@x -c user.name=b commit -qm v1
echo 'print("v2")' > "$seed/release/app.py"
git -C "$seed" -c user.email=b@x -c user.name=b commit -qam v2

cat > "$work/rollback.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
app=$1 url=$2
curl -fsS "$url" >/dev/null
exec 9>"$app/.rollback.lock"
flock -n 9
ts=$(date +%Y%m%d-%H%M%S)
cp -a "$app/config" "$app/config.bak-$ts"
commit=$(git -C "$app" rev-parse HEAD)
git -C "$app" tag "before-rollback-$ts" "$commit"
git -C "$app" checkout -q HEAD~1
cp "$app/release/app.py" "$app/deploy/app.py"
for _ in 1 2 3 4 5 6 7 8 9 10; do curl -fsS "$url" >/dev/null; done
echo "$(date -u +%FT%TZ) rolled back from $commit" >> "$app/rollback.log"
flock -u 9
SH
chmod +x "$work/rollback.sh"

cat > "$work/rollback.lua" <<'LUA'
runbook { name = "vs-bash", version = "1.0.0",
  params = { app = { type = "path", required = true }, url = { type = "url", required = true } } }
step("health", function(p) http.get{ url = p.url } end)
step("back up the config", function(p) fs.backup(p.app .. "/config") end)
step("record and tag the commit", function(p)
  local h = git.head(p.app)
  git.tag{ repo = p.app, name = "before-rollback-" .. run.id, ref = h.commit }
end)
step("check out the previous commit", function(p) git.checkout{ repo = p.app, ref = "HEAD~1" } end)
step("deploy", function(p) fs.copy(p.app .. "/release/app.py", p.app .. "/deploy/app.py") end)
step("verify", function(p) for _ = 1, 10 do http.get{ url = p.url } end end)
local files = require "runbook.files"
step("log", function(p) files.append{ path = p.app .. "/rollback.log", text = "rolled back", newline = true } end)
LUA

export RUNBOOK_JOURNAL=$work/journal.db RUNBOOK_CONFIG=none NO_COLOR=1
prep="rm -rf $work/app && cp -a $seed $work/app"
eval "$prep"
"$bin" exec "$work/rollback.lua" -p app="$work/app" -p url="$url" >/dev/null  # it works, and warms the cache
eval "$prep"
bash "$work/rollback.sh" "$work/app" "$url"
hyperfine -N --warmup 2 --runs "$runs" --prepare "bash -c '$prep'" --export-json "$work/h.json" \
  "bash $work/rollback.sh $work/app $url" \
  "$bin exec $work/rollback.lua -p app=$work/app -p url=$url" >/dev/null
peak() { eval "$prep"; /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
pb=$(peak bash "$work/rollback.sh" "$work/app" "$url")
pr=$(peak "$bin" exec "$work/rollback.lua" -p app="$work/app" -p url="$url")
/usr/bin/python3 - "$work/h.json" "$pb" "$pr" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b, rb = r[0]["mean"] * 1000, r[1]["mean"] * 1000
print("bash     %7.1f ms (min %6.1f)  peak %5.1f MiB (the shell; its children peak on their own)" % (b, r[0]["min"] * 1000, int(sys.argv[2]) / 1024))
print("runbook  %7.1f ms (min %6.1f)  peak %5.1f MiB" % (rb, r[1]["min"] * 1000, int(sys.argv[3]) / 1024))
print("ratio runbook / bash: %.2f  (target at most 0.20)" % (rb / b))
PY
