#!/bin/bash
# A/B of Switchboard builds (no Kamailio): one bounded sipp step per binary, in the order
# given, printing server CPU-µs per successful call, failures and retransmissions.
#
#   bench/sip/ab.sh MODE RATE SECS BIN...      MODE: open (REGISTER), auth (digest), calls
#   bench/sip/ab.sh open 3000 6 /tmp/old /tmp/new /tmp/old /tmp/new /tmp/old /tmp/new
#
# Loopback only, ports 25180-25199; every process is bounded by `timeout`, sipp by -m.
set -u
MODE=$1 RATE=$2 SECS=$3
shift 3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
col() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"; }
for BIN in "$@"; do
    rm -rf "$WORK/data"
    extra=()
    [ "$MODE" = auth ] && extra=(--users "$HERE/users.toml")
    timeout 300 "$BIN" sipd -l 127.0.0.1:25180 -t udp --data "$WORK/data" "${extra[@]}" > "$WORK/sb.log" 2>&1 &
    wrap=$!
    sleep 1
    pid=$(pgrep -P "$wrap" | head -1)
    uas=
    if [ "$MODE" = calls ]; then
        timeout $((SECS + 60)) sipp -sf "$HERE/uas_fast.xml" -i 127.0.0.1 -p 25190 -nostdin \
            -timeout $((SECS + 50)) > "$WORK/uas.screen" 2>&1 &
        uas=$!
        sleep 0.5
        timeout 15 sipp 127.0.0.1:25180 -sf "$HERE/reg_one.xml" -s uas -au uas -ap secret \
            -set contact sip:uas@127.0.0.1:25190 -i 127.0.0.1 -p 25195 -m 1 -timeout 10 -nostdin \
            > /dev/null 2>&1
        args=(-sf "$HERE/uac_call.xml" -s uas -p 25196 -d 100 -l 20000)
    else
        args=(-sf "$HERE/reg_auth.xml" -inf "$HERE/users.csv" -p 25199)
    fi
    c0=$("$HERE/cpu_tree.sh" "$pid")
    timeout $((SECS + 40)) sipp 127.0.0.1:25180 "${args[@]}" -i 127.0.0.1 -r "$RATE" -rp 1000 \
        -m $((RATE * SECS)) -timeout $((SECS + 25)) -recv_timeout 5000 -nostdin -trace_stat \
        -stf "$WORK/stat.csv" -fd 1 > "$WORK/sipp.screen" 2>&1
    c1=$("$HERE/cpu_tree.sh" "$pid")
    [ -n "$uas" ] && kill "$uas" 2> /dev/null
    kill "$pid" 2> /dev/null
    wait "$wrap" 2> /dev/null
    ok=$(col "$WORK/stat.csv" 'SuccessfulCall(C)')
    den=$((ok > 0 ? ok : 1))
    echo "$BIN $MODE $RATE/s ok=$ok fail=$(col "$WORK/stat.csv" 'FailedCall(C)')" \
        "retrans=$(col "$WORK/stat.csv" 'Retransmissions(C)')" \
        "cpu_us=$(echo "scale=1; ($c1 - $c0) * 1000000 / $den" | bc)"
    sleep 1
done
