# shellcheck shell=bash
# The all-in-one server for browser checks and benchmarks (sourced after lib.sh by
# webphone.sh and bench/web/*.sh).

# aio_server BASE: the all-in-one (`switchboard --config`, every role in one process) from
# a config file: SIP UDP BASE, HTTP (and WebRTC UDP) BASE+2, RTMP BASE+5 with the gateway,
# users alice/bob, file:// pages allowed; the gateway's lines' RTP from BASE+20, the web
# phone's from BASE+60. Any SWITCHBOARD_<SECTION>_<KEY> variable in the environment
# overrides the file (e.g. SWITCHBOARD_LOG, SWITCHBOARD_WEB_MAX_PER_IP).
aio_server() {
    local base=$1 need
    for need in chromium node sox; do
        command -v "$need" > /dev/null || fail "$need not installed (see .ci/run)"
    done
    UDP=$base HTTP=$((base + 2)) RTMP=$((base + 5))
    cat > "$CDIR/switchboard.toml" <<EOF
data = "data"
[sip]
udp = ["127.0.0.1:$UDP"]
tcp = []
[web]
listen = ["127.0.0.1:$HTTP"]
origins = ["null"]
rtp_ports = "$((base + 60))-$((base + 99))"
[gateway]
rtp_ports = "$((base + 20))-$((base + 59))"
[rtmp]
listen = "127.0.0.1:$RTMP"
[users]
alice = "alicepw"
bob = "bobpw"
EOF
    SWITCHBOARD_LOG=${SWITCHBOARD_LOG:-debug} spawn srv "$SWITCHBOARD" --config "$CDIR/switchboard.toml"
    SRV=$LAST_PID
    wait_udp "$UDP" "$SRV"
    wait_http "$HTTP" "$SRV"
    wait_port "$RTMP" "$SRV"
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 &&
        sox -n -r 16000 -c 1 -b 16 "$CDIR/tone1000-16k.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write the test tones"
}

