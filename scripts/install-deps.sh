#!/usr/bin/env bash
# Installs everything runbook needs to build, test and run its demo on Debian 12. Idempotent.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(
  build-essential cmake pkg-config ccache git ca-certificates
  liblua5.4-dev libcurl4-openssl-dev libgit2-dev libsqlite3-dev libspdlog-dev libgtest-dev
  libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libhiredis-dev libpq-dev libssl-dev zlib1g-dev
  libre2-dev lua-check libtoml11-dev
  python3 python3-venv python3-pip sqlite3 redis-server postgresql postgresql-client supervisor
  procps clang libclang-rt-14-dev lld
  python3-alembic alembic python3-psycopg2 python3-aiosmtpd
  docker.io docker-compose busybox-static
  chromium python3-pil python3-prometheus-client python3-jsonschema hyperfine
  zsh fish groff-base man-db dpkg-dev
)
# Node.js: use the machine's own if it has one. A nodesource nodejs already carries npm, and
# Debian's `npm` package cannot be installed beside it ("held broken packages").
if ! command -v node >/dev/null 2>&1; then pkgs+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then pkgs+=(npm); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    echo "install-deps: apt-get install failed for: ${missing[*]}" >&2
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2
    exit 1
  }
fi
# Debian's packaged servers must not run as system services for the tests: the tests start
# their own on free ports. Stop any the install started.
for svc in redis-server postgresql supervisor; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
# Docker too: the tests start a private dockerd (own socket, data root, no bridge/iptables).
# Without systemd, `service docker stop` may not find it; then its pidfile names it.
if [ -e /var/run/docker.pid ] || [ -e /etc/init.d/docker ]; then
  $SUDO service docker stop >/dev/null 2>&1 || true
  if [ -s /var/run/docker.pid ]; then
    pid=$(cat /var/run/docker.pid)
    if [ -n "$pid" ] && $SUDO kill -0 "$pid" 2>/dev/null; then
      $SUDO kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      $SUDO kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
fi
# pm2 comes from the npm registry (the tests drive a real pm2).
if ! command -v pm2 >/dev/null 2>&1; then
  $SUDO npm install -g --silent pm2@5 >/dev/null 2>&1 || { echo "install-deps: npm install -g pm2@5 failed (the pm2 tests need it)" >&2; exit 1; }
fi
