#!/usr/bin/env bash
# One command on a fresh Debian 12: installs what runbook needs, builds it, stands up the demo
# environment (runbooks/demo/setup.sh: a git repo with a bad release deployed, its app failing its
# health check) and runs the emergency rollback against it: first rehearsed with --dry-run (which
# changes nothing), then for real. Safe to run again: the demo is rebuilt each time.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install-deps.sh
bash scripts/build.sh
runbooks/demo/setup.sh
echo
echo "== rehearsal: build/runbook exec runbooks/emergency.lua --dry-run"
build/runbook exec runbooks/emergency.lua --dry-run
echo
echo "== for real: build/runbook exec runbooks/emergency.lua"
build/runbook exec runbooks/emergency.lua
echo
echo "The journal holds both runs: build/runbook runs; build/runbook show last"
