#!/usr/bin/env bash
# Interop suite for `switchboard sipd` (SIP core, transports, registrar) against software we
# did not write: sipp, baresip, JsSIP. See README.md.
#
# usage: tests/interop/run.sh [CHECK...]      (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs, data and configs
#                      (default: tests/interop/out; a check's directory is wiped when it starts)
#
# Prints "PASS name" or "FAIL name: why" per check, then "N passed, M failed".
# Exits non-zero if any check failed. All traffic stays on 127.0.0.1, ports 15060-15999.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=checks_sipp.sh
source "$HERE/checks_sipp.sh"
# shellcheck source=checks_peers.sh
source "$HERE/checks_peers.sh"
# shellcheck source=checks_dns.sh
source "$HERE/checks_dns.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    reg_digest_md5_qop:60
    reg_digest_no_qop:60
    reg_forbidden:60
    reg_unknown_domain:60
    unregister:60
    restart_persistence:60
    expiry_bounds:60
    bad_input:60
    refuse_open_public:30
    baresip_udp_tcp:120
    jssip_websocket:90
    proxy_dns_srv:60
)

interop_main "$HERE/run.sh" "$@"
