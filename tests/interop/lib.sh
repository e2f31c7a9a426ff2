# shellcheck shell=bash
# Helpers for the interop checks (sourced by run.sh).
#
# Each check runs in its own bash process (see run.sh) with:
#   CHECK  its name            CDIR  its own scratch directory (logs, --data, configs)
# and may use: start_server / wait_udp / wait_tcp / wait_http / stop_server, spawn,
# sipp_run, received_msg / sent_msg / contacts_of, fail. Everything it starts is killed
# when it exits (trap EXIT), and run.sh bounds the whole check with `timeout`.

INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIPP_DIR=$INTEROP_DIR/sipp
PY=${PYTHON:-python3}

PIDS=()        # everything this check started, killed on exit
LAST_PID=      # pid of the last start_server / spawn
LINKS=()       # short symlinks this check made (short_link), removed on exit

# fail WHY: end the current check as failed, with a one-line reason.
fail() {
    printf '%s\n' "$*" | tr '\n' ' ' | sed 's/ *$//' > "$CDIR/reason"
    exit 1
}

note() { printf '%s\n' "$*" >> "$CDIR/notes"; }

cleanup() {
    local pid
    rm -f "${LINKS[@]}"
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2> /dev/null || true
    done
}

# short_link DIR: sets LAST_LINK to a short path to DIR (a symlink /tmp/sb.XXXXXXXX,
# removed when the check ends). baresip's sndfile module cuts a recording's path at about
# 126 characters, losing its ".wav" (the checks then find no recording) when the check's
# directory is deep: a long clone path or INTEROP_WORK (bench/web/run.sh's).
short_link() {
    LAST_LINK=$(mktemp -u /tmp/sb.XXXXXXXX)
    ln -s "$1" "$LAST_LINK"
    LINKS+=("$LAST_LINK")
}

# spawn LABEL CMD...: run CMD in the background (stdout LABEL.out, stderr LABEL.err).
spawn() {
    local label=$1
    shift
    "$@" > "$CDIR/$label.out" 2> "$CDIR/$label.err" < /dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# start_server LABEL ARGS...: `switchboard sipd ARGS...` in the background.
start_server() {
    local label=$1
    shift
    spawn "$label" "$SWITCHBOARD" sipd "$@"
}

# server_died PID LABEL: fail with the server's last words if PID has exited.
server_died() {
    if ! kill -0 "$1" 2> /dev/null; then
        fail "server $2 exited early: $(tail -3 "$CDIR/$2.err" 2> /dev/null | tr '\n' ' ')"
    fi
}

# wait_udp PORT [PID LABEL]: poll with OPTIONS over UDP until a 200 comes back (10 s).
wait_udp() {
    local port=$1 pid=${2:-$LAST_PID} label=${3:-srv} end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        if "$PY" "$INTEROP_DIR/sipwire.py" --timeout 0.2 127.0.0.1 "$port" options 2> /dev/null | grep -q '^SIP/2.0 200'; then
            return 0
        fi
        server_died "$pid" "$label"
        sleep 0.1
    done
    fail "server $label not answering OPTIONS on udp/$port after 10 s"
}

# wait_tcp PORT [PID LABEL]: same over TCP.
wait_tcp() {
    local port=$1 pid=${2:-$LAST_PID} label=${3:-srv} end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        if "$PY" "$INTEROP_DIR/sipwire.py" --tcp --timeout 0.5 127.0.0.1 "$port" options 2> /dev/null | grep -q '^SIP/2.0 200'; then
            return 0
        fi
        server_died "$pid" "$label"
        sleep 0.1
    done
    fail "server $label not answering OPTIONS on tcp/$port after 10 s"
}

# wait_port PORT [PID LABEL]: poll until something accepts TCP connections on PORT (10 s).
wait_port() {
    local port=$1 pid=${2:-$LAST_PID} label=${3:-srv} end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$port" 2> /dev/null; then
            return 0
        fi
        server_died "$pid" "$label"
        sleep 0.1
    done
    fail "server $label not accepting TCP connections on $port after 10 s"
}

# wait_http PORT [PID LABEL]: poll GET /healthz until it answers 200 "ok" (10 s).
wait_http() {
    local port=$1 pid=${2:-$LAST_PID} label=${3:-srv} body end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        body=$("$PY" -c 'import sys, urllib.request as u
print(u.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[1], timeout=1).read().decode())' "$port" 2> /dev/null || true)
        if [[ $body == ok* ]]; then
            return 0
        fi
        server_died "$pid" "$label"
        sleep 0.2
    done
    fail "server $label: GET http://127.0.0.1:$port/healthz did not answer 200 ok after 10 s"
}

# stop_server PID LABEL: SIGTERM, wait up to 5 s for a clean exit (status 0).
stop_server() {
    local pid=$1 label=$2 rc=0 end=$((SECONDS + 5))
    kill -TERM "$pid" 2> /dev/null || true
    while ((SECONDS < end)); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2> /dev/null; then
        fail "server $label still running 5 s after SIGTERM"
    fi
    wait "$pid" || rc=$?
    [[ $rc -eq 0 ]] || fail "server $label exited with status $rc after SIGTERM: $(tail -2 "$CDIR/$label.err" | tr '\n' ' ')"
}

# write_users FILE [USER=PASSWORD]...: a switchboard users file (TOML).
write_users() {
    local file=$1 kv
    shift
    {
        echo '[users]'
        for kv in "$@"; do
            printf '"%s" = "%s"\n' "${kv%%=*}" "${kv#*=}"
        done
    } > "$file"
}

# sipp_run LABEL SERVER_PORT SCENARIO [SIPP ARGS...]
# One bounded sipp call (-m 1 unless overridden later in ARGS) from 127.0.0.1:$SIPP_PORT
# ($SIPP_TRANSPORT: u1 or t1). Traces: LABEL.msg (all messages), LABEL.errors,
# LABEL.log (<log> actions), LABEL.screen. Returns sipp's exit status (0 = all calls OK).
sipp_run() {
    local label=$1 port=$2 scen=$3 rc=0
    shift 3
    [[ $scen == /* ]] || scen=$SIPP_DIR/$scen
    rm -f "$CDIR/$label".{msg,errors,log,screen,out}
    timeout -k 2 25 sipp "127.0.0.1:$port" -sf "$scen" \
        -i 127.0.0.1 -p "${SIPP_PORT:?}" -t "${SIPP_TRANSPORT:-u1}" \
        -m 1 -timeout 10s -timeout_error -recv_timeout 5s -max_retrans 3 -nostdin \
        -trace_msg -message_file "$CDIR/$label.msg" \
        -trace_err -error_file "$CDIR/$label.errors" \
        -trace_logs -log_file "$CDIR/$label.log" \
        -trace_screen -screen_file "$CDIR/$label.screen" \
        "$@" > "$CDIR/$label.out" 2>&1 < /dev/null || rc=$?
    return "$rc"
}

# sipp_why LABEL: one line on why a sipp run failed.
sipp_why() {
    local label=$1 last err
    last=$(grep -E '^SIP/2\.0 [0-9]{3}' "$CDIR/$label.msg" 2> /dev/null | tail -1 | tr -d '\r' || true)
    err=$(grep -vE '^\s*$|^-+|^Timeout|^Aborting call' "$CDIR/$label.errors" 2> /dev/null | tail -1 | tr -d '\r' | cut -c1-200 || true)
    echo "sipp $label failed (last response: ${last:-none}${err:+; sipp: $err})"
}

# received_msg FILE CODE: the last response with status CODE that sipp received (CRs stripped).
received_msg() {
    tr -d '\r' < "$1" | awk -v code="$2" '
        /^-----------------------------------------------/ { inmsg = 0; next }
        /message received/ { inmsg = 1; cur = ""; started = 0; next }
        inmsg && !started && /^$/ { next }
        inmsg { started = 1; cur = cur $0 "\n"; if (cur ~ ("^SIP/2\\.0 " code " ")) last = cur }
        END { printf "%s", last }'
}

# sent_msg FILE N: the N-th message sipp sent (1-based, CRs stripped).
sent_msg() {
    tr -d '\r' < "$1" | awk -v want="$2" '
        /^-----------------------------------------------/ { inmsg = 0; next }
        /message sent/ { n++; inmsg = (n == want); started = 0; next }
        inmsg && !started && /^$/ { next }
        inmsg { started = 1; print }'
}

# contacts_of MSG: the values of the Contact headers of a message (one per line).
contacts_of() {
    printf '%s' "$1" | grep -iE '^(contact|m):' | sed -E 's/^[^:]*:[[:space:]]*//' || true
}

# query_contacts LABEL PORT USER DOMAIN [SIPP ARGS...]: REGISTER without Contact and print
# the Contact values of the 200 (fails the check if there is no 200).
query_contacts() {
    local label=$1 port=$2 user=$3 domain=$4
    shift 4
    sipp_run "$label" "$port" reg_query.xml -key user "$user" -key domain "$domain" "$@" ||
        fail "$(sipp_why "$label")"
    contacts_of "$(received_msg "$CDIR/$label.msg" 200)"
}

# interop_main SCRIPT ARGS...: the runner every interop script ends with. The script sets
# ALL_CHECKS (name:seconds ...) and defines check_NAME for each; it may define
# `interop_single NAME` (how one check runs in its child process; default: check_NAME with
# cleanup on exit) and `interop_setup` (once, before the checks; return non-zero to fail).
#   SCRIPT                 run every check
#   SCRIPT NAME...         run these
#   SCRIPT --list          list the names
# Each check runs as `SCRIPT --single NAME` under `timeout`, in $INTEROP_WORK/NAME; prints
# "PASS name" or "FAIL name: why", then "N passed, M failed"; non-zero if any failed.
interop_main() {
    local self=$1
    shift
    if [[ ${1:-} == --single ]]; then
        CHECK=$2
        CDIR=$INTEROP_WORK/$CHECK
        mkdir -p "$CDIR"
        if declare -F interop_single > /dev/null; then
            interop_single "$CHECK"
        else
            trap cleanup EXIT
            trap 'exit 143' TERM INT
            "check_$CHECK"
        fi
        exit 0
    fi
    if [[ ${1:-} == --list ]]; then
        for c in "${ALL_CHECKS[@]}"; do echo "${c%%:*}"; done
        exit 0
    fi
    local selected=() want found c
    if [[ $# -eq 0 ]]; then
        selected=("${ALL_CHECKS[@]}")
    else
        for want in "$@"; do
            found=
            for c in "${ALL_CHECKS[@]}"; do
                if [[ ${c%%:*} == "$want" ]]; then selected+=("$c"); found=1; fi
            done
            [[ -n $found ]] || { echo "unknown check: $want (see --list)" >&2; exit 2; }
        done
    fi

    # The binary under test.
    local root
    root=$(cd "$INTEROP_DIR/../.." && pwd)
    if [[ -z ${SWITCHBOARD:-} ]]; then
        SWITCHBOARD=${CARGO_TARGET_DIR:-$root/target}/debug/switchboard
        if [[ ! -x $SWITCHBOARD ]]; then
            echo "building switchboard ($SWITCHBOARD)..." >&2
            if ! (cd "$root" && cargo build -p switchboard) >&2; then
                echo "FAIL build: cargo build -p switchboard failed"
                echo "0 passed, 1 failed"
                exit 1
            fi
        fi
    fi
    [[ -x $SWITCHBOARD ]] || { echo "no switchboard binary at $SWITCHBOARD" >&2; exit 2; }
    export SWITCHBOARD
    export INTEROP_WORK=${INTEROP_WORK:-$INTEROP_DIR/out}
    INTEROP_WORK=$(mkdir -p "$INTEROP_WORK" && cd "$INTEROP_WORK" && pwd)
    if declare -F interop_setup > /dev/null && ! interop_setup; then
        echo "0 passed, 1 failed"
        exit 1
    fi

    # `timeout` puts each check in its own process group, out of reach of Ctrl-C: pass
    # INT/TERM on, so the check's EXIT trap stops what it started.
    INTEROP_CHILD=
    trap '[[ -n $INTEROP_CHILD ]] && { kill -TERM "$INTEROP_CHILD" 2> /dev/null; wait "$INTEROP_CHILD" 2> /dev/null; }; echo interrupted >&2; exit 130' INT TERM

    local passed=0 failed=0 start=$SECONDS name limit rc why
    for c in "${selected[@]}"; do
        name=${c%%:*}
        limit=${c#*:}
        rm -rf "${INTEROP_WORK:?}/$name"
        mkdir -p "$INTEROP_WORK/$name"
        rc=0
        timeout -k 5 "$limit" "$self" --single "$name" \
            > "$INTEROP_WORK/$name/check.out" 2>&1 &
        INTEROP_CHILD=$!
        wait "$INTEROP_CHILD" || rc=$?
        INTEROP_CHILD=
        if [[ $rc -eq 0 ]]; then
            echo "PASS $name"
            passed=$((passed + 1))
        else
            if [[ $rc -eq 124 || $rc -eq 137 ]]; then
                why="timed out after ${limit}s"
            elif [[ -s $INTEROP_WORK/$name/reason ]]; then
                why=$(cat "$INTEROP_WORK/$name/reason")
            else
                why="exit status $rc: $(tail -2 "$INTEROP_WORK/$name/check.out" | tr '\n' ' ')"
            fi
            echo "FAIL $name: $why"
            failed=$((failed + 1))
        fi
    done
    echo "logs: $INTEROP_WORK ($((SECONDS - start)) s)" >&2
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

# The browser suites (browser.sh, webphone.sh) run each check in a fresh network namespace
# holding only lo (plus ICE_ADDR, which the script sets), so neither Chromium nor anything
# else reaches beyond this machine. They call, before interop_main:
#   [[ ${1:-} == --inside ]] && netns_inside "$2"
#   interop_single() { netns_single "$SELF" "$1"; }
#   interop_setup() { browser_npm; }

# netns_single SCRIPT NAME: create the namespace, run `SCRIPT --inside NAME` in it, delete it.
netns_single() {
    local script=$1 name=$2 ns rc=0
    ns=sb-$(basename "$script" .sh)-$$
    ip netns add "$ns" 2> "$CDIR/netns.err" ||
        fail "cannot create a network namespace (needs root and iproute2): $(head -1 "$CDIR/netns.err")"
    trap 'ip netns del "'"$ns"'" 2> /dev/null || true' EXIT
    trap 'exit 143' TERM INT
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "$ICE_ADDR/32" dev lo
    ip netns exec "$ns" ip -brief addr > "$CDIR/netns.txt"
    ip netns exec "$ns" "$script" --inside "$name" || rc=$?
    exit "$rc"
}

# netns_inside NAME: run check_NAME (already inside its namespace) and exit.
netns_inside() {
    CHECK=$1
    CDIR=$INTEROP_WORK/$CHECK
    trap cleanup EXIT
    trap 'exit 143' TERM INT
    "check_$CHECK"
    exit 0
}

# browser_npm: the drivers' packages (playwright-core, jssip, esbuild) in
# tests/interop/browser, installed once with `npm ci`, outside any namespace.
browser_npm() {
    local dir=$INTEROP_DIR/browser
    [[ -d $dir/node_modules/playwright-core && -d $dir/node_modules/jssip && -d $dir/node_modules/esbuild ]] &&
        return 0
    echo "npm ci in $dir..." >&2
    if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund) >&2; then
        echo "FAIL npm: npm ci in tests/interop/browser failed"
        return 1
    fi
}
