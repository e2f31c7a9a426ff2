# shellcheck shell=bash
# The SIP-RTMP gateway checks (sourced by gateway.sh; helpers from lib.sh, checks_proxy.sh
# and checks_phone.sh). Ports 21000-21999 on 127.0.0.1.

# gateway_start LABEL RTMP_PORT SIP_PROXY_PORT RTP_LO [ARGS...]: `switchboard gateway` with
# its lines' SIP going to the sipd at 127.0.0.1:SIP_PROXY_PORT; waits for the RTMP port.
gateway_start() {
    local label=$1 rtmp=$2 proxy=$3 rtp=$4
    shift 4
    spawn "$label" "$SWITCHBOARD" gateway -p "$rtmp" --outbound-proxy "127.0.0.1:$proxy" \
        --rtp-ports "$rtp-$((rtp + 19))" -d "$@"
    wait_port "$rtmp" "$LAST_PID" "$label"
}

# gateway_speex_flv FILE HZ SECONDS: FLV of Speex 16 kHz tags (what Flash publishes).
gateway_speex_flv() {
    command -v ffmpeg > /dev/null || fail "ffmpeg not installed (apt-get install ffmpeg)"
    ffmpeg -hide_banner -loglevel error -y -f lavfi \
        -i "sine=frequency=$2:sample_rate=16000:duration=$3" \
        -c:a libspeex -ar 16000 -ac 1 -f flv "$1" 2> "$CDIR/ffmpeg.err" ||
        fail "ffmpeg cannot encode Speex: $(tail -1 "$CDIR/ffmpeg.err")"
}

# 1. python-librtmp connects to rtmp://gw/sip/alice@... with (alice, secret, Alice): the
#    gateway's line registers with digest at sipd, the connect succeeds; invite(bob,
#    wideband, ulaw, dtmf) (a Flash 10 list: Speex, or PCMU through the transcoder) reaches
#    baresip (PCMU only, auto-answer) through sipd; the client gets ringing and the
#    server-initiated accepted('speex'), publishes Speex on `local`; baresip hears the
#    1 kHz tone (Speex WB transcoded to PCMU by the line's media bridge).
check_gateway_librtmp_speex() {
    phone_needs_baresip
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    local port=21000
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    proxy_tones
    gateway_speex_flv "$CDIR/speex1000.flv" 1000 10
    proxy_mk_baresip bob $((port + 10)) $((port + 30)) $((port + 40)) "$CDIR/tone440.wav" \
        "<sip:bob@127.0.0.1:$port>;auth_pass=bobsecret;answermode=auto;audio_codecs=PCMU;regint=600"
    proxy_baresip_start bob
    proxy_baresip_registered bob $((port + 30))
    gateway_start gw $((port + 35)) $port $((port + 60))
    proxy_fg timeout 40 "$PY" "$INTEROP_DIR/gateway_librtmp.py" $((port + 35)) \
        "alice@127.0.0.1:$port" alice secret "sip:bob@127.0.0.1:$port" \
        "$CDIR/speex1000.flv" 5 wideband ulaw dtmf > "$CDIR/client.out" 2> "$CDIR/client.err" ||
        fail "python-librtmp: $(tail -1 "$CDIR/client.err")"
    grep -q '^callback accepted speex' "$CDIR/client.out" ||
        fail "no accepted('speex', ...) callback: $(grep callback "$CDIR/client.out" | tr '\n' ' ')"
    proxy_tone_ok bob 1 1000 440
}
