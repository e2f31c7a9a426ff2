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

interop_main "$HERE/phone.sh" "$@"
