#!/usr/bin/env bash
# A/B of gateway builds *and settings* at one load (bench/gateway/run.sh alternates builds
# only): runs each variant in turn, RUNS times, one JSON line per run on stdout (the load
# generator's, plus the variant's name "v", the round "run" and the 1-minute load average).
#
#   LOAD=target/release/examples/gateway_load bench/gateway/ab.sh CALLS CODEC RUNS \
#       "base=-:/tmp/old-switchboard" "new2=SWITCHBOARD_RTMP_THREADS=2:/tmp/new-switchboard"
#
# A variant is NAME=ENV:BINARY[:GENERATOR], ENV a VAR=VALUE for the gateway or "-", and
# GENERATOR a load generator other than LOAD (for A/B of generators). The callee is a
# SIP user agent of the load generator (FAR=sip of run.sh); 8 s windows; sipd from the
# variant's binary; loopback ports as run.sh (sipd 19890, RTMP 19835).
# LOGS=DIR keeps each run's gateway stderr as DIR/NAME-CALLS-CODEC-RUN.log (with
# RUST_LOG=info,switchboard_ua=debug as ENV: each call's jitter-buffer counters).
set -u
LOAD=${LOAD:-target/release/examples/gateway_load}
N=$1 CODEC=$2 RUNS=$3
shift 3
for r in $(seq 1 "$RUNS"); do
    for v in "$@"; do
        name=${v%%=*} rest=${v#*=}
        envs=${rest%%:*} bin=${rest#*:} load=$LOAD
        if [[ $bin == *:* ]]; then
            load=${bin#*:} bin=${bin%%:*}
        fi
        [[ $envs == - ]] && envs=
        W=$(mktemp -d)
        "$bin" sipd -l 127.0.0.1:19890 -t udp --data "$W/data" > /dev/null 2> "$W/sipd.err" &
        sipd=$!
        env $envs "$bin" gateway -p 19835 --outbound-proxy 127.0.0.1:19890 \
            --rtp-ports 30000-39999 > /dev/null 2> "$W/gw.err" &
        gw=$!
        sleep 1
        line=$(timeout 150 "$load" --rtmp 127.0.0.1:19835 --calls "$N" --codec "$CODEC" \
            --seconds 8 --pid "$gw" --sipd-pid "$sipd" --ramp-ms 20 --far sip \
            --sip 127.0.0.1:19890 --rtp-ports 40000-49999 || echo '{"error":1}')
        echo "{\"v\":\"$name\",\"run\":$r,\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",${line#\{}"
        kill "$gw" "$sipd" 2> /dev/null
        wait "$gw" "$sipd" 2> /dev/null
        [[ -n ${LOGS:-} ]] && mkdir -p "$LOGS" && cp "$W/gw.err" "$LOGS/$name-$N-$CODEC-$r.log"
        rm -rf "$W"
        sleep 1
    done
done
