#!/usr/bin/env bash
# RTMP fan-out benchmark: one publisher (ffmpeg, H.264 640x360 25 fps ~1 Mbit/s + AAC 128
# kbit/s, pre-encoded and sent in real time) to N players (our load client, the sans-IO
# RTMP client session), against `switchboard rtmp` and nginx-rtmp in the same run.
#
# usage: bench/rtmp/run.sh    env: LEVELS="10 100 500" WARMUP=5 MEASURE=20 PORT=25935
#        RTMP_ARGS (extra `switchboard rtmp` options, e.g. "--threads 2")
#        SWITCHBOARD_RELEASE, RTMP_LOAD (prebuilt release binaries; default: build them)
#        SERVERS: the servers run at each level, in this order (default
#          "switchboard nginx-rtmp"); NAME=PATH runs the switchboard binary PATH under
#          the name NAME, for A/B runs of two builds: SERVERS="base=/tmp/a new=/tmp/b nginx-rtmp"
#        REPS: repetitions of the whole alternation (default 1)
# Prints one line per (server, N) and writes them to bench/rtmp/out/results.txt; with
# REPS > 1 the median CPU % per player of each (server, N) follows.
# Per line: players that connected / played / got every frame (>= 98 % of 25 fps x MEASURE
# with no gap over 1 s), the fewest and median frames a player got, the longest gap, the
# server's CPU seconds over the window (utime+stime from /proc) and CPU % of one core per
# player. Everything runs on 127.0.0.1; the load client and ffmpeg share the 2 cores.
# Needs: ffmpeg (libx264, aac), nginx-light, libnginx-mod-rtmp.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/switchboard-target}
LEVELS=${LEVELS:-10 100 500}; WARMUP=${WARMUP:-5}; MEASURE=${MEASURE:-20}; PORT=${PORT:-25935}
OUT=bench/rtmp/out; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)

# SWITCHBOARD_RELEASE / RTMP_LOAD: prebuilt binaries (release builds) instead of building.
if [[ -z ${SWITCHBOARD_RELEASE:-} || -z ${RTMP_LOAD:-} ]]; then
  cargo build --release -q -p switchboard --bin switchboard
  cargo build --release -q -p switchboard-front-rtmp --example rtmp_load
fi
SW=${SWITCHBOARD_RELEASE:-$CARGO_TARGET_DIR/release/switchboard}
LOAD=${RTMP_LOAD:-$CARGO_TARGET_DIR/release/examples/rtmp_load}

# The stream: 30 s, looped by the publisher.
SRC=$OUT/source.flv
if [[ ! -s $SRC ]]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25:duration=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=30" \
    -c:v libx264 -preset veryfast -b:v 1000k -maxrate 1000k -bufsize 2000k -g 50 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -f flv "$SRC"
fi

SERVER_PID=; PUB_PID=
stop() {
  [[ -n $PUB_PID ]] && kill "$PUB_PID" 2>/dev/null && wait "$PUB_PID" 2>/dev/null || true
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  PUB_PID=; SERVER_PID=
}
trap stop EXIT

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on $PORT did not start" >&2; return 1
}

start_server() { # $1: switchboard | nginx-rtmp | NAME=PATH (a switchboard binary)
  case $1 in
    nginx-rtmp) ;;
    *)
      local bin=$SW name=${1%%=*}
      [[ $1 == *=* ]] && bin=${1#*=}
      # shellcheck disable=SC2086
      "$bin" rtmp -p "$PORT" -r "$OUT" ${RTMP_ARGS:-} > "$OUT/$name.log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  case $1 in
    nginx-rtmp)
      mkdir -p "$OUT/nginx"
      sed -e "s|@DIR@|$OUT/nginx|g" -e "s|@PORT@|$PORT|g" bench/rtmp/nginx.conf.in > "$OUT/nginx/nginx.conf"
      nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" > "$OUT/nginx/stdout.log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  wait_port
  ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$SRC" -c copy \
    -f flv "rtmp://127.0.0.1:$PORT/live/bench" > "$OUT/publisher-${1%%=*}.log" 2>&1 &
  PUB_PID=$!
  sleep 3
}

{
  echo "# $(date -u +%FT%TZ) $(nproc) cores; warmup ${WARMUP}s, window ${MEASURE}s; load $(cut -d' ' -f1-3 /proc/loadavg)"
  # Alternating per level, so that all servers see the same machine load.
  for rep in $(seq "${REPS:-1}"); do
    for n in $LEVELS; do
      for server in ${SERVERS:-switchboard nginx-rtmp}; do
        start_server "$server"
        ulimit -n 65536 2>/dev/null || true
        line=$("$LOAD" "127.0.0.1:$PORT" live bench "$n" "$WARMUP" "$MEASURE" "$SERVER_PID" 25)
        echo "server=${server%%=*} rep=$rep $line"
        stop
        sleep 1
      done
    done
  done
} | tee "$OUT/results.txt"

if (( ${REPS:-1} > 1 )); then
  echo "# median cpu %/player (and each run's), per server and level"
  for n in $LEVELS; do
    for server in ${SERVERS:-switchboard nginx-rtmp}; do
      grep "^server=${server%%=*} .* players=$n " "$OUT/results.txt" \
        | sed 's/.*cpu_pct_per_player=//' | sort -g \
        | awk -v s="${server%%=*}" -v n="$n" '{ v[NR] = $1 } END {
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            all = ""; for (i = 1; i <= NR; i++) all = all " " v[i]
            printf "median server=%s players=%s cpu_pct_per_player=%.4f (%s )\n", s, n, m, all }'
    done
  done | tee -a "$OUT/results.txt"
fi
