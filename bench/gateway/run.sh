#!/usr/bin/env bash
# SIP-RTMP gateway benchmark (issue 7): concurrent RTMP<->SIP calls with audio both ways.
#
#   bench/gateway/run.sh [CALLS...]          default: 50 100 200 400
#   env: CODECS="pcmu speex" SECONDS_PER_RUN=20 RUNS=3
#
# Per run: `switchboard sipd` (release, open registration on loopback) on udp 19990,
# `switchboard gateway` (release) on 127.0.0.1:19935 whose lines register there, and the
# load generator `gateway_load` (crates/front/gateway/examples): CALLS pairs of RTMP phones
# (calleeI registers, callerI invites it), each publishing 20 ms audio tags on `local`
# and playing `remote`: two lines per call, every tag crosses the gateway twice.
# `pcmu` = pass-through on both lines; `speex` = the caller sends Speex WB and its line
# transcodes to the PCMU the callee answered. One JSON line per run in
# bench/gateway/results/TIMESTAMP.jsonl; CPU and memory are the gateway process's.
# Loopback only; every process is bounded and killed at the end of its run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p switchboard -p switchboard-gateway --example gateway_load
SB=$CARGO_TARGET_DIR/release/switchboard
LOAD=$CARGO_TARGET_DIR/release/examples/gateway_load
CALLS=("$@")
[[ ${#CALLS[@]} -gt 0 ]] || CALLS=(50 100 200 400)
CODECS=${CODECS:-pcmu speex}
SECS=${SECONDS_PER_RUN:-20}
RUNS=${RUNS:-3}
OUT=bench/gateway/results
mkdir -p "$OUT"
RESULT=$OUT/$(date -u +%Y%m%dT%H%M%SZ).jsonl
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$WORK"' EXIT

for run in $(seq 1 "$RUNS"); do
    for codec in $CODECS; do
        for n in "${CALLS[@]}"; do
            rm -rf "$WORK/data"
            "$SB" sipd -l 127.0.0.1:19990 -t udp --data "$WORK/data" 2> "$WORK/sipd.err" &
            sipd=$!
            "$SB" gateway -p 19935 --outbound-proxy 127.0.0.1:19990 --rtp-ports 30000-39999 \
                2> "$WORK/gw.err" &
            gw=$!
            sleep 1
            line=$(timeout $((SECS + 120)) "$LOAD" --rtmp 127.0.0.1:19935 --calls "$n" \
                --codec "$codec" --seconds "$SECS" --pid "$gw" --ramp-ms 20 ||
                echo '{"error":"load generator failed"}')
            echo "{\"run\":$run,${line#\{}" | tee -a "$RESULT"
            kill "$gw" "$sipd" 2> /dev/null || true
            wait "$gw" "$sipd" 2> /dev/null || true
            sleep 1
        done
    done
done
echo "results: $RESULT" >&2
