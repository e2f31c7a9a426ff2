#!/usr/bin/env bash
# Proxy interop checks for `switchboard sipd` (stateful proxy, RFC 3261 §16): calls between
# sipp UAs and between baresip softphones through switchboard. See checks_proxy.sh.
#
# usage: tests/interop/proxy.sh [CHECK...]    (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs and traces (default: tests/interop/out;
#                      a check's directory is wiped when it starts)
#
# Prints "PASS name" or "FAIL name: why" per check, then "N passed, M failed".
# Exits non-zero if any check failed. All traffic stays on 127.0.0.1, ports 16500-16599 and 17000-17999.
# Needs: sipp (sip-tester), baresip (baresip-core), python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=checks_proxy.sh
source "$HERE/checks_proxy.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    proxy_call:60
    proxy_cancel:60
    proxy_cancel_early:60
    proxy_busy:60
    proxy_fork:60
    proxy_baresip_udp:90
    proxy_baresip_udp_tcp:90
    proxy_redirect:60
    proxy_unavailable:60
    proxy_naive_uac:60
    proxy_stall:60
)

interop_main "$HERE/proxy.sh" "$@"
