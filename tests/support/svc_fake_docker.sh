#!/bin/sh
# Stands in for docker where no Docker daemon runs (tests only): appends its argv to
# $SVC_FAKE_DIR/calls.log and keeps the compose service's state in $SVC_FAKE_DIR/state.
dir=${SVC_FAKE_DIR:?SVC_FAKE_DIR not set}
echo "docker $*" >> "$dir/calls.log"
verb=""
for a in "$@"; do
  case "$a" in ps|up|stop) verb=$a; break ;; esac
done
case "$verb" in
  ps)
    if [ "$(cat "$dir/state" 2>/dev/null)" = running ]; then
      echo '{"Name":"shop-web-1","Service":"web","State":"running","Status":"Up 2 seconds","Health":""}'
    fi ;;
  up) echo running > "$dir/state" ;;
  stop) echo exited > "$dir/state" ;;
  *) echo "fake docker: unexpected command $*" >&2; exit 1 ;;
esac
