#!/bin/sh
# Stands in for systemctl where systemd cannot run (tests only): appends its argv to
# $SVC_FAKE_DIR/calls.log and keeps the unit's state in $SVC_FAKE_DIR/state.
dir=${SVC_FAKE_DIR:?SVC_FAKE_DIR not set}
echo "systemctl $*" >> "$dir/calls.log"
case "$1" in
  is-active)
    s=$(cat "$dir/state" 2>/dev/null || echo inactive)
    echo "$s"
    [ "$s" = active ] || exit 3 ;;
  start|restart) echo active > "$dir/state" ;;
  stop) echo inactive > "$dir/state" ;;
  show) echo 4242 ;;
  *) echo "fake systemctl: unexpected verb $1" >&2; exit 1 ;;
esac
