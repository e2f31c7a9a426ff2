#!/usr/bin/env bash
# Issue 5 benchmark: idle registered lines and concurrent calls through `switchboard sipd`.
# Usage: bench/lines/run.sh [idle|calls|all]   (env: LINES=50000 RATE=1000 HOLD=75
#        LEVELS_PCMU=50,100,200,400 LEVELS_TRANSCODED=20,40,60,80 DURATION=20 PORT=25060). Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/switchboard-target}
WHAT=${1:-all}
LINES=${LINES:-50000}; RATE=${RATE:-1000}; HOLD=${HOLD:-75}
LEVELS_PCMU=${LEVELS_PCMU:-50,100,200,400}; LEVELS_TRANSCODED=${LEVELS_TRANSCODED:-20,40,60,80}; DURATION=${DURATION:-20}; PORT=${PORT:-25060}
OUT=bench/lines/out; mkdir -p "$OUT"

cargo build --release -q -p switchboard --bin switchboard
cargo build --release -q -p switchboard-ua --example line_bench
SW=$CARGO_TARGET_DIR/release/switchboard
LB=$CARGO_TARGET_DIR/release/examples/line_bench

SIPD_PID=
start_sipd() { # $1: extra args
  local data; data=$(mktemp -d /tmp/lines-sipd.XXXXXX)
  # shellcheck disable=SC2086
  "$SW" --data "$data" sipd -l 127.0.0.1:$PORT -t udp $1 >"$OUT/sipd-$2.log" 2>&1 &
  SIPD_PID=$!
  for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:$PORT " && return 0; sleep 0.1; done
  echo "sipd did not start" >&2; return 1
}
stop_sipd() { [ -n "$SIPD_PID" ] && kill "$SIPD_PID" 2>/dev/null; wait "$SIPD_PID" 2>/dev/null || true; SIPD_PID=; }
trap stop_sipd EXIT

if [ "$WHAT" = idle ] || [ "$WHAT" = all ]; then
  start_sipd "--min-expires 60 --max-expires 60" idle
  timeout $((LINES / RATE + HOLD + 300)) "$LB" idle --sipd 127.0.0.1:$PORT --lines "$LINES" --rate "$RATE" \
    --hold "$HOLD" --expires 60 --sipd-pid "$SIPD_PID" | tee "$OUT/idle.txt"
  stop_sipd
fi
if [ "$WHAT" = calls ] || [ "$WHAT" = all ]; then
  for mode in pcmu transcoded; do
    if [ $mode = pcmu ]; then LEVELS=$LEVELS_PCMU; else LEVELS=$LEVELS_TRANSCODED; fi
    start_sipd "" "calls-$mode"
    timeout 900 "$LB" calls --sipd 127.0.0.1:$PORT --levels "$LEVELS" --mode $mode \
      --duration "$DURATION" --sipd-pid "$SIPD_PID" | tee "$OUT/calls-$mode.txt"
    stop_sipd
  done
fi
