#!/usr/bin/env bash
# Interop checks for `switchboard gateway`, the SIP-RTMP gateway (the original `siprtmp`):
# RTMP clients on rtmp://HOST/sip/USER@DOMAIN call and are called as SIP phones through
# `switchboard sipd`. See checks_gateway.sh.
#
# usage: tests/interop/gateway.sh [CHECK...]    (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs (default: tests/interop/out)
# All traffic stays on 127.0.0.1, ports 21000-21999.
# Needs: baresip (baresip-core, baresip-ffmpeg), kamailio, ffmpeg, python-librtmp (librtmp-dev), python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=checks_proxy.sh
source "$HERE/checks_proxy.sh"
# shellcheck source=checks_phone.sh
source "$HERE/checks_phone.sh"
# shellcheck source=checks_gateway.sh
source "$HERE/checks_gateway.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    gateway_librtmp_speex:90
    gateway_librtmp_inbound:90
    gateway_disconnect:120
    gateway_kamailio:90
    gateway_same_aor:90
    gateway_librtmp_video:60
    gateway_librtmp_xflv:60
    gateway_baresip_video:60
    gateway_baresip_video_in:60
    gateway_baresip_keyframe:60
)

interop_main "$HERE/gateway.sh" "$@"
