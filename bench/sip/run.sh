#!/bin/bash
# SIP benchmark: `switchboard sipd` against Kamailio 5.6, the same sipp scenarios side by side.
#
#   bench/sip/run.sh                    # every phase (about 40 minutes)
#   bench/sip/run.sh reg_auth calls     # some phases: reg_auth reg_noauth calls memory latency
#   REPS=1 SECS=5 bench/sip/run.sh      # a quick look
#
# Writes bench/sip/results/<UTC date>.md (and prints its table); raw sipp output, server logs
# and per-step numbers stay in bench/sip/out/<timestamp>/.
#
# Both servers run at once on their own ports (idle, the other costs nothing) and every rate
# step is run against one then the other (order alternating between repetitions), so both
# see the same background load. A step passes when every call succeeds, sipp sees at most
# RETRANS_PCT % retransmissions and reaches 90 % of the target rate; the rates go up until a
# server fails a step. CPU is the server's utime+stime over the step (Kamailio: all its
# processes), divided by successful calls.
#
# Traffic is loopback only; every process is bounded by `timeout`, every sipp by -m/-timeout.
# Needs: kamailio (5.6), sip-tester (sipp 3.6), tcpdump (latency phase), python3, bc, cargo.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

REPS=${REPS:-3}
SECS=${SECS:-10}
RATES_AUTH=${RATES_AUTH:-"1000 1500 2000 2500 3000 3500 4000 4500 5000 5500 6000 7000 8000"}
RATES_NOAUTH=${RATES_NOAUTH:-"2000 3000 4000 5000 6000 7000 8000 9000 10000 11000 12000 14000"}
RATES_CALLS=${RATES_CALLS:-"250 500 750 1000 1250 1500 1750 2000"}
RETRANS_PCT=${RETRANS_PCT:-1}
# sipp's socket buffers (-buff_size, bytes; the kernel caps them at net.core.rmem_max). At
# several thousand messages/s sipp's default 128 KiB receive buffer overflows whenever sipp
# itself is preempted, and the resulting retransmissions then fail a step of either server.
SIPP_BUFF=${SIPP_BUFF:-4194304}
MEM_USERS=${MEM_USERS:-100000}
MEM_RATE=${MEM_RATE:-2000}
LAT_RATE=${LAT_RATE:-100}
LAT_SECS=${LAT_SECS:-20}
KAM_PORT=${KAM_PORT:-25070}
SB_PORT=${SB_PORT:-25080}
UAS_PORT=${UAS_PORT:-25090}
REGONE_PORT=$((UAS_PORT + 5))
UAC_PORT=$((UAS_PORT + 6))
REG_PORT=$((UAS_PORT + 9))

# Kamailio's shared-memory allocator: this Debian build defaults to qm (-x qm), whose
# qm_malloc takes half of Kamailio's CPU in the calls test; tlsf is what a tuned
# deployment uses. KAM_OPTS="" gives the packaged default.
KAM_OPTS=${KAM_OPTS--x tlsf -X tlsf}

PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(reg_auth reg_noauth calls memory latency)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/out/$STAMP}
RESULTS=${RESULTS:-$HERE/results/$(date -u +%Y-%m-%d).md}
mkdir -p "$OUT" "$(dirname "$RESULTS")"
STEPS=$OUT/steps.tsv
LAT=$OUT/latency.tsv
MEM=$OUT/memory.tsv

for tool in kamailio kamcmd sipp python3 bc; do
    command -v "$tool" > /dev/null || {
        echo "run.sh: $tool not found (apt-get install kamailio sip-tester python3 bc tcpdump)" >&2
        exit 2
    }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWITCHBOARD=${SWITCHBOARD:-$CARGO_TARGET_DIR/release/switchboard}
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && timeout 1800 cargo build --release -q -p switchboard) || exit 2
fi
[ -x "$SWITCHBOARD" ] || {
    echo "run.sh: no $SWITCHBOARD" >&2
    exit 2
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

# ---------------------------------------------------------------- servers
KAM_PID=
KAM_WRAP=
SB_PID=
SB_WRAP=
UAS_WRAP=
TCPDUMP_WRAP=

cleanup() {
    for p in $UAS_WRAP $TCPDUMP_WRAP $SB_WRAP $KAM_WRAP; do
        kill -TERM "$p" 2> /dev/null
    done
    [ -n "$KAM_PID" ] && kill -TERM "$KAM_PID" 2> /dev/null
    [ -n "$SB_PID" ] && kill -TERM "$SB_PID" 2> /dev/null
    sleep 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_kam NAME [-A WITH_AUTH]: Kamailio on KAM_PORT, main pid in KAM_PID.
start_kam() {
    local name=$1
    shift
    local dir=$OUT/kam_$name
    mkdir -p "$dir"
    sed "s/5070/$KAM_PORT/g" "$HERE/kamailio.cfg" > "$dir/kamailio.cfg"
    timeout --kill-after=5 7200 kamailio -f "$dir/kamailio.cfg" -P "$dir/kam.pid" -Y "$dir" \
        -DD -E -m 1024 -M 16 $KAM_OPTS -A "CTL_SOCK=\"unix:$dir/ctl\"" "$@" > "$dir/kam.log" 2>&1 &
    KAM_WRAP=$!
    KAM_CTL=unix:$dir/ctl
    for _ in $(seq 1 50); do
        sleep 0.2
        [ -s "$dir/kam.pid" ] && kamcmd -s "$KAM_CTL" core.uptime > /dev/null 2>&1 && break
    done
    KAM_PID=$(cat "$dir/kam.pid" 2> /dev/null)
    [ -n "$KAM_PID" ] || {
        log "kamailio did not start: $(tail -3 "$dir/kam.log")"
        exit 1
    }
}

stop_kam() {
    [ -n "$KAM_PID" ] && kill -TERM "$KAM_PID" 2> /dev/null
    wait "$KAM_WRAP" 2> /dev/null
    KAM_PID=
    KAM_WRAP=
}

# start_sb NAME [sipd args]: switchboard sipd on SB_PORT with a fresh data dir.
start_sb() {
    local name=$1
    shift
    local dir=$OUT/sb_$name
    mkdir -p "$dir"
    rm -rf "$dir/data"
    timeout --kill-after=5 7200 "$SWITCHBOARD" sipd -l "127.0.0.1:$SB_PORT" -t udp \
        --data "$dir/data" "$@" > "$dir/sb.log" 2>&1 &
    SB_WRAP=$!
    for _ in $(seq 1 50); do
        sleep 0.2
        grep -q ready "$dir/sb.log" 2> /dev/null && break
    done
    SB_PID=$(pgrep -P "$SB_WRAP" | head -1)
    [ -n "$SB_PID" ] || {
        log "switchboard did not start: $(tail -3 "$dir/sb.log")"
        exit 1
    }
    SB_DATA=$dir/data
}

stop_sb() {
    [ -n "$SB_PID" ] && kill -TERM "$SB_PID" 2> /dev/null
    wait "$SB_WRAP" 2> /dev/null
    SB_PID=
    SB_WRAP=
}

server_pid() { if [ "$1" = kamailio ]; then echo "$KAM_PID"; else echo "$SB_PID"; fi; }
server_port() { if [ "$1" = kamailio ]; then echo "$KAM_PORT"; else echo "$SB_PORT"; fi; }

start_uas() {
    local label=$1
    timeout --kill-after=2 $((SECS + 60)) sipp -sf "$HERE/uas_fast.xml" -i 127.0.0.1 -p "$UAS_PORT" \
        -buff_size "$SIPP_BUFF" \
        -nostdin -timeout $((SECS + 50)) -trace_err -error_file "$OUT/$label.uas.err" \
        > "$OUT/$label.uas.screen" 2>&1 &
    UAS_WRAP=$!
    sleep 0.5
}

stop_uas() {
    [ -n "$UAS_WRAP" ] && kill -TERM "$UAS_WRAP" 2> /dev/null
    wait "$UAS_WRAP" 2> /dev/null
    UAS_WRAP=
}

# register_uas SERVER: bind AOR `uas` to the UAS's address (digest if challenged).
register_uas() {
    local port
    port=$(server_port "$1")
    timeout 15 sipp "127.0.0.1:$port" -sf "$HERE/reg_one.xml" -s uas -au uas -ap secret \
        -set contact "sip:uas@127.0.0.1:$UAS_PORT" -i 127.0.0.1 -p "$REGONE_PORT" -m 1 \
        -timeout 10 -recv_timeout 5000 -nostdin > "$OUT/reg_uas_$1.screen" 2>&1 ||
        log "registering uas at $1 failed"
}

# stat FILE COLUMN: the last value of a sipp -trace_stat column.
stat_col() {
    awk -F';' -v col="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==col) c=i; next} {v=$c} END{print v+0}' "$1"
}

# run_step PHASE REP SERVER RATE -- sipp args: one bounded sipp run, one line in steps.tsv.
# Returns 0 if the step passed.
run_step() {
    local phase=$1 rep=$2 server=$3 rate=$4
    shift 5
    local pid port n label cpu0 cpu1 rc
    pid=$(server_pid "$server")
    port=$(server_port "$server")
    n=$((rate * SECS))
    label=${phase}_r${rep}_${server}_${rate}
    [ "$phase" = calls ] && start_uas "$label"
    cpu0=$("$HERE/cpu_tree.sh" "$pid")
    local t0 t1
    t0=$(date +%s.%N)
    timeout $((SECS + 40)) sipp "127.0.0.1:$port" "$@" -i 127.0.0.1 -r "$rate" -rp 1000 -m "$n" \
        -buff_size "$SIPP_BUFF" -timeout $((SECS + 25)) -recv_timeout 5000 -nostdin -trace_stat -stf "$OUT/$label.csv" \
        -fd 1 -trace_err -error_file "$OUT/$label.err" > "$OUT/$label.screen" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    cpu1=$("$HERE/cpu_tree.sh" "$pid")
    [ "$phase" = calls ] && stop_uas
    local ok fail retr achieved cpu cpu_us pass wall
    ok=$(stat_col "$OUT/$label.csv" 'SuccessfulCall(C)')
    fail=$(stat_col "$OUT/$label.csv" 'FailedCall(C)')
    retr=$(stat_col "$OUT/$label.csv" 'Retransmissions(C)')
    wall=$(echo "$t1 - $t0" | bc)
    achieved=$(echo "scale=1; $ok / $wall" | bc)
    cpu=$(echo "$cpu1 - $cpu0" | bc)
    cpu_us=$(if [ "$ok" -gt 0 ]; then echo "scale=1; $cpu * 1000000 / $ok" | bc; else echo 0; fi)
    pass=1
    if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ] || [ "$ok" -ne "$n" ] ||
        [ "$(echo "$retr * 100 > $RETRANS_PCT * $n" | bc)" = 1 ] ||
        [ "$(echo "$achieved < 0.9 * $rate" | bc)" = 1 ]; then
        pass=0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$rep" "$server" \
        "$rate" "$n" "$ok" "$fail" "$retr" "$rc" "$achieved" "$cpu" "$cpu_us" "$pass" >> "$STEPS"
    log "$label: ok=$ok/$n fail=$fail retrans=$retr rc=$rc achieved=${achieved}/s cpu=${cpu}s (${cpu_us} us/call) pass=$pass"
    sleep 2
    [ "$pass" = 1 ]
}

# sweep PHASE RATES -- sipp args: for each repetition, step the rate up for both servers
# (alternating which goes first) until each fails a step.
sweep() {
    local phase=$1 rates=$2
    shift 3
    local rep rate server order
    for rep in $(seq 1 "$REPS"); do
        if [ $((rep % 2)) = 1 ]; then order="kamailio switchboard"; else order="switchboard kamailio"; fi
        local -A alive=([kamailio]=1 [switchboard]=1)
        for rate in $rates; do
            [ "${alive[kamailio]}${alive[switchboard]}" = 00 ] && break
            for server in $order; do
                [ "${alive[$server]}" = 1 ] || continue
                run_step "$phase" "$rep" "$server" "$rate" -- "$@" || alive[$server]=0
            done
        done
    done
}

[ -s "$STEPS" ] || printf 'phase\trep\tserver\trate\tn\tok\tfail\tretrans\trc\tachieved\tcpu_s\tcpu_us_per_call\tpass\n' > "$STEPS"

phase_reg_auth() {
    log "phase reg_auth: REGISTER with digest, 1000 users"
    start_kam auth -A WITH_AUTH
    start_sb auth --users "$HERE/users.toml"
    sweep reg_auth "$RATES_AUTH" -- -sf "$HERE/reg_auth.xml" -inf "$HERE/users.csv" -p "$REG_PORT"
    stop_kam
    stop_sb
}

phase_reg_noauth() {
    log "phase reg_noauth: REGISTER without authentication, 1000 users"
    start_kam open
    start_sb open
    sweep reg_noauth "$RATES_NOAUTH" -- -sf "$HERE/reg_auth.xml" -inf "$HERE/users.csv" -p "$REG_PORT"
    stop_kam
    stop_sb
}

phase_calls() {
    log "phase calls: INVITE/200/ACK/BYE through the proxy, 100 ms hold"
    start_kam calls
    start_sb calls
    register_uas kamailio
    register_uas switchboard
    sweep calls "$RATES_CALLS" -- -sf "$HERE/uac_call.xml" -s uas -p "$UAC_PORT" -d 100 -l 20000
    stop_kam
    stop_sb
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
shm_used() { kamcmd -s "$KAM_CTL" core.shmmem 2> /dev/null | awk '/real_used/{print $2}'; }

# fill PORT LABEL [SCENARIO ARGS]: MEM_USERS REGISTERs, each of a distinct AOR by default.
fill() {
    local port=$1 label=$2 secs=$((MEM_USERS / MEM_RATE + 30))
    shift 2
    [ $# -eq 0 ] && set -- -sf "$HERE/reg_open.xml"
    timeout $((secs + 60)) sipp "127.0.0.1:$port" "$@" -i 127.0.0.1 -p "$REG_PORT" \
        -r "$MEM_RATE" -rp 1000 -m "$MEM_USERS" -timeout "$secs" -recv_timeout 5000 -nostdin \
        -trace_stat -stf "$OUT/$label.csv" -fd 1 > "$OUT/$label.screen" 2>&1
    stat_col "$OUT/$label.csv" 'SuccessfulCall(C)'
}

phase_memory() {
    log "phase memory: $MEM_USERS distinct bindings at $MEM_RATE/s"
    [ -s "$MEM" ] || printf 'server\tbindings\tbefore_kb\tafter_kb\tbytes_per_binding\tdb_bytes\twal_bytes\tnote\n' > "$MEM"
    start_sb memory
    sleep 1
    local before after ok db wal
    before=$(rss_kb "$SB_PID")
    ok=$(fill "$SB_PORT" memory_switchboard)
    # Let the transactions of the last REGISTERs end (Timer J, 32 s) before measuring.
    sleep 35
    after=$(rss_kb "$SB_PID")
    db=$(stat -c %s "$SB_DATA/locations.db" 2> /dev/null || echo 0)
    wal=$(stat -c %s "$SB_DATA/locations.db-wal" 2> /dev/null || echo 0)
    printf 'switchboard\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ok" "$before" "$after" \
        "$(((after - before) * 1024 / (ok > 0 ? ok : 1)))" "$db" "$wal" "VmRSS" >> "$MEM"
    log "switchboard: $ok bindings, VmRSS $before -> $after kB, db $db B, wal $wal B"
    stop_sb
    # The database on disk again, after a clean shutdown (WAL checkpointed).
    db=$(stat -c %s "$SB_DATA/locations.db" 2> /dev/null || echo 0)
    log "switchboard: db after shutdown $db B"
    printf 'switchboard-db-after-stop\t%s\t\t\t\t%s\t\t%s\n' "$ok" "$db" "file size" >> "$MEM"

    # Control: the same number of REGISTERs at the same rate, but for only the 1000 AORs
    # of users.csv. Freed transaction state stays in the allocator's heap (VmRSS does not
    # shrink), so the difference between the two runs is what the bindings cost.
    start_sb memory_control
    sleep 1
    before=$(rss_kb "$SB_PID")
    ok=$(fill "$SB_PORT" memory_switchboard_control -sf "$HERE/reg_auth.xml" -inf "$HERE/users.csv")
    sleep 35
    after=$(rss_kb "$SB_PID")
    printf 'switchboard-control-1000-aors\t%s\t%s\t%s\t\t\t\t%s\n' "$ok" "$before" "$after" \
        "VmRSS, $ok REGISTERs of 1000 AORs" >> "$MEM"
    log "switchboard control: $ok REGISTERs of 1000 AORs, VmRSS $before -> $after kB"
    stop_sb

    start_kam memory
    sleep 1
    before=$(shm_used)
    ok=$(fill "$KAM_PORT" memory_kamailio)
    sleep 35
    after=$(shm_used)
    printf 'kamailio\t%s\t%s\t%s\t%s\t\t\t%s\n' "$ok" "$((before / 1024))" "$((after / 1024))" \
        "$(((after - before) / (ok > 0 ? ok : 1)))" "shm real_used" >> "$MEM"
    log "kamailio: $ok bindings, shm real_used $before -> $after B"
    stop_kam
}

# latency_run TARGET PORT REP: LAT_RATE calls/s for LAT_SECS through TARGET (or direct).
latency_run() {
    local target=$1 port=$2 rep=$3 label=latency_${1}_r$3 n=$((LAT_RATE * LAT_SECS))
    local dir=$OUT/$label
    mkdir -p "$dir"
    start_uas "$label"
    if [ "$target" != direct ] && command -v tcpdump > /dev/null; then
        timeout --kill-after=2 $((LAT_SECS + 40)) tcpdump -i lo -n -s 2000 -B 8192 \
            --time-stamp-precision=nano -w "$dir/hop.pcap" "udp port $port" > "$dir/tcpdump.log" 2>&1 &
        TCPDUMP_WRAP=$!
        sleep 1
    fi
    (cd "$dir" && timeout $((LAT_SECS + 40)) sipp "127.0.0.1:$port" -sf "$HERE/uac_call.xml" -s uas \
        -i 127.0.0.1 -p "$UAC_PORT" -d 100 -r "$LAT_RATE" -rp 1000 -m "$n" -timeout $((LAT_SECS + 25)) \
        -recv_timeout 5000 -nostdin -trace_rtt -rtt_freq 100 -fd 1 > sipp.screen 2>&1)
    local rc=$?
    stop_uas
    local hop='{}'
    if [ -n "$TCPDUMP_WRAP" ]; then
        sleep 1
        kill -INT "$TCPDUMP_WRAP" 2> /dev/null
        wait "$TCPDUMP_WRAP" 2> /dev/null
        TCPDUMP_WRAP=
        hop=$(python3 "$HERE/hop_latency.py" "$dir/hop.pcap" "$port" 2> "$dir/hop.err" || echo '{}')
    fi
    # sipp's rtd is in whole milliseconds.
    local rtt
    rtt=$(cat "$dir"/*_rtt.csv 2> /dev/null | awk -F';' '$3==1{print $2}' | sort -n |
        awk '{v[NR]=$1} END{if(NR==0){print "- - 0"; exit} i50=int(0.5*(NR-1)+1.5); i99=int(0.99*(NR-1)+1.5); if(i50>NR)i50=NR; if(i99>NR)i99=NR; print v[i50], v[i99], NR}')
    local p50 p99 nrtt
    read -r p50 p99 nrtt <<< "$rtt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$rep" "$rc" "$p50" "$p99" "$nrtt" "$hop" >> "$LAT"
    log "$label: rc=$rc sipp rtd p50/p99/n(ms) = $rtt hop=$hop"
    sleep 2
}

phase_latency() {
    log "phase latency: $LAT_RATE calls/s, direct vs through each proxy"
    [ -s "$LAT" ] || printf 'path\trep\trc\trtd_p50_ms\trtd_p99_ms\tn\thop_json\n' > "$LAT"
    start_kam latency
    start_sb latency
    register_uas kamailio
    register_uas switchboard
    local rep
    for rep in $(seq 1 "$REPS"); do
        latency_run direct "$UAS_PORT" "$rep"
        latency_run kamailio "$KAM_PORT" "$rep"
        latency_run switchboard "$SB_PORT" "$rep"
    done
    stop_kam
    stop_sb
}

{
    echo "started $(date -u '+%Y-%m-%d %H:%M:%S UTC') phases: ${PHASES[*]}"
    echo "REPS=$REPS SECS=$SECS RETRANS_PCT=$RETRANS_PCT SIPP_BUFF=$SIPP_BUFF"
    echo "RATES_AUTH=$RATES_AUTH"
    echo "RATES_NOAUTH=$RATES_NOAUTH"
    echo "RATES_CALLS=$RATES_CALLS"
    echo "MEM_USERS=$MEM_USERS MEM_RATE=$MEM_RATE LAT_RATE=$LAT_RATE LAT_SECS=$LAT_SECS"
    echo "switchboard $($SWITCHBOARD --version 2> /dev/null) git $(cd "$ROOT" && git describe --always --dirty 2> /dev/null)"
    echo "$(kamailio -v 2> /dev/null | head -1) started with -m 1024 -M 16 $KAM_OPTS, children=2"
    echo "sipp $(sipp -v 2> /dev/null | grep -o 'v[0-9][^ ]*' | head -1)"
    echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
} > "$OUT/env.txt"

for phase in "${PHASES[@]}"; do
    case $phase in
        reg_auth | reg_noauth | calls | memory | latency) "phase_$phase" ;;
        *)
            echo "unknown phase $phase" >&2
            exit 2
            ;;
    esac
done

python3 "$HERE/summarize.py" "$OUT" > "$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
cat "$RESULTS"
log "results: $RESULTS (raw: $OUT)"
