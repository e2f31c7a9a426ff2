#!/usr/bin/env bash
# Interop checks for `switchboard phone` (the command-line phone, a line on the switchboard-ua
# driver): digest registration to `switchboard sipd` and to Kamailio, calls to and from
# baresip with PCMU and Opus, DTMF between two phones, and failures. See checks_phone.sh.
#
# usage: tests/interop/phone.sh [CHECK...]    (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs and traces (default: tests/interop/out;
#                      a check's directory is wiped when it starts)
#
# Prints "PASS name" or "FAIL name: why" per check, then "N passed, M failed".
# Exits non-zero if any check failed. All traffic stays on 127.0.0.1, ports 19000-19899.
# Needs: baresip (baresip-core), kamailio, dnsmasq (dnsmasq-base), python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=checks_proxy.sh
source "$HERE/checks_proxy.sh"
# shellcheck source=checks_phone.sh
source "$HERE/checks_phone.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    phone_sipd_pcmu:60
    phone_sipd_opus:60
    phone_answer_pcmu:60
    phone_answer_opus:60
    phone_kamailio:60
    phone_dtmf:60
    phone_refused:60
    phone_dns_srv:60
)

# --single NAME: run one check in this process (phone.sh invokes itself this way).
if [[ ${1:-} == --single ]]; then
    CHECK=$2
    CDIR=$INTEROP_WORK/$CHECK
    mkdir -p "$CDIR"
    trap cleanup EXIT
    trap 'exit 143' TERM INT
    "check_$CHECK"
    exit 0
fi

if [[ ${1:-} == --list ]]; then
    for c in "${ALL_CHECKS[@]}"; do echo "${c%%:*}"; done
    exit 0
fi

selected=()
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
if [[ -z ${SWITCHBOARD:-} ]]; then
    SWITCHBOARD=${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard
    if [[ ! -x $SWITCHBOARD ]]; then
        echo "building switchboard ($SWITCHBOARD)..." >&2
        if ! (cd "$ROOT" && cargo build -p switchboard) >&2; then
            echo "FAIL build: cargo build -p switchboard failed"
            echo "0 passed, 1 failed"
            exit 1
        fi
    fi
fi
[[ -x $SWITCHBOARD ]] || { echo "no switchboard binary at $SWITCHBOARD" >&2; exit 2; }
export SWITCHBOARD

export INTEROP_WORK=${INTEROP_WORK:-$HERE/out}
INTEROP_WORK=$(mkdir -p "$INTEROP_WORK" && cd "$INTEROP_WORK" && pwd)

# `timeout` puts each check in its own process group, out of reach of Ctrl-C: pass INT/TERM
# on, so the check's EXIT trap stops what it started.
child=
interrupted() {
    if [[ -n $child ]]; then
        kill -TERM "$child" 2> /dev/null || true
        wait "$child" 2> /dev/null || true
    fi
    echo "interrupted" >&2
    exit 130
}
trap interrupted INT TERM

passed=0
failed=0
start=$SECONDS
for c in "${selected[@]}"; do
    name=${c%%:*}
    limit=${c#*:}
    rm -rf "${INTEROP_WORK:?}/$name"
    mkdir -p "$INTEROP_WORK/$name"
    rc=0
    timeout -k 5 "$limit" "$HERE/phone.sh" --single "$name" \
        > "$INTEROP_WORK/$name/check.out" 2>&1 &
    child=$!
    wait "$child" || rc=$?
    child=
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
