#!/usr/bin/env bash
# SIP-RTMP gateway benchmark (issue 7): concurrent RTMP<->SIP calls with audio both ways.
#
#   bench/gateway/run.sh [CALLS...]          default: 50 100 200 400
#   env: CODECS="pcmu speex" FAR="gateway sip" SECONDS_PER_RUN=20 RUNS=3
#        SERVERS: the gateway builds run at each level, in this order (default: the one
#          built here); NAME=PATH runs the switchboard binary PATH under the name NAME, for
#          A/B runs of two builds: SERVERS="base=/tmp/a new=/tmp/b" (sipd is always the
#          first build's)
#        SWITCHBOARD_RELEASE, GATEWAY_LOAD: prebuilt release binaries (default: build them)
#        SIP_PORT=19990 RTMP_PORT=19935: where sipd and the gateway listen
#
# Per run: `switchboard sipd` (release, open registration on loopback) on udp SIP_PORT,
# `switchboard gateway` (release) on 127.0.0.1:RTMP_PORT whose lines register there, and
# the load generator `gateway_load` (crates/front/gateway/examples): CALLS calls, each
# an RTMP phone `callerI` inviting `calleeI`, both sides sending 20 ms audio frames.
# FAR=gateway: the callee is another RTMP phone through the gateway (two lines per call,
# every tag crosses the gateway twice); FAR=sip: the callee is a SIP user agent of the
# load generator (one line per call, RTP straight to the gateway's line).
# `pcmu` = pass-through; `speex` = the caller sends Speex WB and its line transcodes to
# the PCMU the callee answered. One JSON line per run in bench/gateway/results/
# TIMESTAMP.jsonl; CPU (schedstat) and memory are per process: the gateway's, sipd's and
# the load generator's (whose own lateness is load_late_ticks_pct: a run where the
# generator was short of CPU says little about the gateway). Then the median of each (server, far, codec, calls) over RUNS.
# Loopback only; every process is bounded and killed at the end of its run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [[ -z ${SWITCHBOARD_RELEASE:-} || -z ${GATEWAY_LOAD:-} ]]; then
    # Two commands: with --example, cargo builds only the example, not the binary.
    cargo build --release -q -p switchboard --bin switchboard
    cargo build --release -q -p switchboard-gateway --example gateway_load
fi
SB=${SWITCHBOARD_RELEASE:-$CARGO_TARGET_DIR/release/switchboard}
LOAD=${GATEWAY_LOAD:-$CARGO_TARGET_DIR/release/examples/gateway_load}
CALLS=("$@")
[[ ${#CALLS[@]} -gt 0 ]] || CALLS=(50 100 200 400)
CODECS=${CODECS:-pcmu speex}
FAR=${FAR:-gateway}
SERVERS=${SERVERS:-switchboard=$SB}
SECS=${SECONDS_PER_RUN:-20}
RUNS=${RUNS:-3}
SIP_PORT=${SIP_PORT:-19990}
RTMP_PORT=${RTMP_PORT:-19935}
OUT=bench/gateway/results
mkdir -p "$OUT"
RESULT=$OUT/$(date -u +%Y%m%dT%H%M%SZ).jsonl
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 65536 2> /dev/null || true
first=${SERVERS%% *}
SIPD=${first#*=}

echo "# $(date -u +%FT%TZ) $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Alternating builds within each level, so that every build sees the same machine load.
for run in $(seq 1 "$RUNS"); do
    for far in $FAR; do
        for codec in $CODECS; do
            for n in "${CALLS[@]}"; do
                for server in $SERVERS; do
                    name=${server%%=*} bin=${server#*=}
                    rm -rf "$WORK/data"
                    "$SIPD" sipd -l "127.0.0.1:$SIP_PORT" -t udp --data "$WORK/data" \
                        2> "$WORK/sipd.err" &
                    sipd=$!
                    "$bin" gateway -p "$RTMP_PORT" --outbound-proxy "127.0.0.1:$SIP_PORT" \
                        --rtp-ports 30000-39999 2> "$WORK/gw.err" &
                    gw=$!
                    sleep 1
                    line=$(timeout $((SECS + 150)) "$LOAD" --rtmp "127.0.0.1:$RTMP_PORT" \
                        --calls "$n" --codec "$codec" --seconds "$SECS" --pid "$gw" \
                        --sipd-pid "$sipd" --ramp-ms 20 --far "$far" \
                        --sip "127.0.0.1:$SIP_PORT" --rtp-ports 40000-49999 ||
                        echo '{"error":"load generator failed"}')
                    echo "{\"server\":\"$name\",\"run\":$run,${line#\{}" | tee -a "$RESULT"
                    kill "$gw" "$sipd" 2> /dev/null || true
                    wait "$gw" "$sipd" 2> /dev/null || true
                    sleep 1
                done
            done
        done
    done
done
echo "results: $RESULT" >&2
python3 - "$RESULT" << 'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"error"' not in l]
keys = sorted({(r["far"], r["codec"], r["calls"], r["server"]) for r in rows},
              key=lambda k: (k[0], k[1], k[2]))
cols = ["accepted", "loss_pct", "late_pct", "jitter_ms", "load_late_ticks_pct",
        "gateway_cpu_pct_per_call", "sipd_cpu_pct_per_call", "load_cpu_pct_per_call",
        "gateway_rss_kib"]
print("# medians: far codec calls server " + " ".join(cols))
for k in keys:
    rs = [r for r in rows if (r["far"], r["codec"], r["calls"], r["server"]) == k]
    med = [statistics.median(r.get(c, float("nan")) for r in rs) for c in cols]
    print(*k, *(f"{m:.4g}" for m in med), f"(n={len(rs)})")
EOF
