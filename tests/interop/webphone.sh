#!/usr/bin/env bash
# The /phone API (docs/web-api.md) in a real browser: headless Chromium (Debian's
# /usr/bin/chromium through playwright-core, fake microphone playing a 440 Hz WAV) runs
# browser/webphone.html, which connects a line over the JSON WebSocket and carries the
# call's audio over WebRTC to switchboard (ICE-lite, DTLS-SRTP); switchboard bridges it to
# a baresip softphone over plain RTP, passing payloads through or transcoding, or to the
# RTMP phone client (`switchboard rtmp-phone`) through the gateway of the all-in-one.
#
# usage: tests/interop/webphone.sh [CHECK...]  (default: every check; names listed by --list)
# env:   SWITCHBOARD, INTEROP_WORK as in browser.sh; WEBPHONE_SECONDS (audio analysed per
#        call, default 5) and WEBPHONE_SERVER_CPU=1 (the calls also report the server's CPU
#        and the call-button-to-INVITE time: bench/web/run.sh).
#
# Prints "PASS name" or "FAIL name: why" per check, then "N passed, M failed".
# Each check runs in its own network namespace holding only the loopback device; the
# server (SIP UDP, HTTP with /phone, WebRTC UDP, RTMP), baresip, rtmp-phone and Chromium
# use 127.0.0.1 ports 18400-19399.
#
# Needs: root (ip netns), iproute2, chromium, node + npm (`npm ci` in tests/interop/browser),
# baresip (baresip-core: g711, opus, aufile, sndfile, ctrl_tcp), sipp (sip-tester), sox, python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BROWSER_DIR=$HERE/browser

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=checks_gateway.sh
source "$HERE/checks_gateway.sh"
# shellcheck source=aio.sh
source "$HERE/aio.sh"

SECS=${WEBPHONE_SECONDS:-5}
ALL_CHECKS=(
    webphone_calls_baresip_pcmu:$((80 + 2 * SECS))
    webphone_calls_baresip_opus:$((80 + 2 * SECS))
    webphone_transcodes_opus_pcmu:$((80 + 2 * SECS))
    baresip_calls_webphone:90
    webphone_wrong_password:60
    webphone_tab_closed:90
    webphone_calls_rtmp_phone:$((70 + 2 * SECS))
    rtmp_phone_calls_webphone:$((70 + 2 * SECS))
    jssip_calls_webphone:$((75 + 2 * SECS))
    webphone_calls_echo_test:$((70 + 2 * SECS))
)

# Nothing in these checks needs an ICE address besides loopback (baresip speaks plain RTP).
ICE_ADDR=198.18.0.1

need() {
    command -v "$1" > /dev/null || fail "$1 not installed ($2)"
}

# web_server BASE: switchboard with SIP UDP BASE, HTTP (and WebRTC UDP) BASE+2, digest
# users alice/bob, the /phone API, file:// pages allowed (their Origin is "null").
web_server() {
    local base=$1
    need chromium "apt-get install chromium"
    need node "apt-get install nodejs npm"
    need baresip "apt-get install baresip-core"
    need sox "apt-get install sox"
    UDP=$base HTTP=$((base + 2))
    write_users "$CDIR/users.toml" alice=alicepw bob=bobpw
    start_server srv -l "127.0.0.1:$UDP" -t udp -l "127.0.0.1:$HTTP" -t ws \
        --users "$CDIR/users.toml" --data "$CDIR/data" --phone --origin null -d
    SRV=$LAST_PID
    wait_udp "$UDP" "$SRV"
    wait_http "$HTTP" "$SRV"
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 ||
        fail "sox could not write tone440.wav"
}

# rtmp_phone_alice ARGS...: `switchboard rtmp-phone` as alice on the all-in-one's gateway,
# in the background, playing 1000 Hz and recording what it receives to alice.wav.
rtmp_phone_alice() {
    spawn alice timeout -k 2 $((40 + 2 * SECS)) "$SWITCHBOARD" rtmp-phone \
        "rtmp://127.0.0.1:$RTMP/sip/alice@127.0.0.1" --authname alice --authpass alicepw \
        --displayname Alice --play "$CDIR/tone1000-16k.wav" --loop --record "$CDIR/alice.wav" "$@"
    ALICE=$LAST_PID
}

# web_baresip BASE CODEC: baresip alice (sip BASE+10, ctrl BASE+20, rtp BASE+30..39),
# registered with digest, auto-answer, only CODEC (PCMU or opus/48000/2), playing 1000 Hz
# and recording what it receives (-dec.wav).
web_baresip() {
    local base=$1 codec=$2 dir=$CDIR/baresip-alice wav
    mkdir -p "$dir/rec"
    CTRL=$((base + 20))
    if [[ $codec == PCMU ]]; then
        wav=$CDIR/tone1000.wav
        sox -n -r 8000 -c 1 -b 16 "$wav" synth 30 sine 1000 vol 0.5 || fail "sox failed"
    else
        # aufile must match opus/48000/2: stereo 48 kHz.
        wav=$CDIR/tone1000-48k.wav
        sox -n -r 48000 -c 2 -b 16 "$wav" synth 30 sine 1000 vol 0.5 || fail "sox failed"
    fi
    short_link "$dir/rec"
    cat > "$dir/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$((base + 10))
net_interface		127.0.0.1
call_local_timeout	120
audio_player		alsa,null
audio_source		aufile,$wav
audio_alert		alsa,null
audio_buffer		20-160
rtp_ports		$((base + 30))-$((base + 39))
jitter_buffer_delay	5-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			opus.so
module			alsa.so
module			aufile.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$CTRL
snd_path		$LAST_LINK
opus_bitrate		28000
EOF
    echo "<sip:alice@127.0.0.1:$UDP>;auth_pass=alicepw;answermode=auto;audio_codecs=$codec;regint=600" \
        > "$dir/accounts"
    spawn baresip baresip -f "$dir" -v
    BARESIP=$LAST_PID
    local end=$((SECONDS + 10)) reg=
    while ((SECONDS < end)); do
        reg=$(timeout 6 "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd "$CTRL" reginfo 2> /dev/null |
            sed -E 's/\x1b\[[0-9;]*m//g' | grep -E '^[> ] *sip:' || true)
        grep -qw OK <<< "$reg" && return 0
        kill -0 "$BARESIP" 2> /dev/null || fail "baresip exited: $(tail -2 "$CDIR/baresip.err" | tr '\n' ' ')"
        sleep 0.3
    done
    fail "baresip (alice) not registered after 10 s: ${reg:-no reginfo}"
}

# wp MODE ARGS...: run browser/webphone.js as bob (output wp.out / wp.err).
wp() {
    local rc=0
    wp_cmd "$@" > "$CDIR/wp.out" 2> "$CDIR/wp.err" < /dev/null || rc=$?
    return "$rc"
}

# wp_bg MODE ARGS...: the same in the background (pid WP).
wp_bg() {
    spawn wp wp_cmd "$@"
    WP=$LAST_PID
}

wp_cmd() {
    local mode=$1
    shift
    timeout -k 3 $((50 + 2 * SECS)) node "$BROWSER_DIR/webphone.js" "$mode" --work "$CDIR/web" \
        --url "ws://127.0.0.1:$HTTP/phone/bob@127.0.0.1" --authname bob \
        --wav "$CDIR/tone440.wav" "$@"
}

# out WORD: the first line of wp.out starting with WORD.
out() {
    grep -m1 -E "^$1( |$)" "$CDIR/wp.out" || true
}

wp_why() {
    local l
    l=$(grep -E '^(refused|call-failed|error|audio-failed|baresip-not)' "$CDIR/wp.out" | head -1 || true)
    [[ -n $l ]] || l="last step: $(tail -1 "$CDIR/wp.out" 2> /dev/null | cut -c1-160)"
    echo "$l; server: $(grep -E 'WARN|ERROR' "$CDIR/srv.err" | tail -1 | cut -c1-160)"
}

# check_accepted AUDIO BROWSER TRANSCODING: the `accepted` event's fields.
check_accepted() {
    local l
    l=$(out accepted)
    [[ -n $l ]] || fail "no accepted event: $(wp_why)"
    note "$l"
    grep -q "\"audioCodec\":\"$1\"" <<< "$l" || fail "accepted with the wrong SIP codec (want $1): $l"
    grep -q "\"browserCodec\":\"$2\"" <<< "$l" || fail "accepted with the wrong browser codec (want $2): $l"
    grep -q "\"transcoding\":$3" <<< "$l" || fail "accepted: transcoding should be $3: $l"
}

# check_media: the page heard baresip's 1000 Hz, baresip recorded the browser's 440 Hz.
check_media() {
    local rec
    page_heard baresip
    rec=$(find "$CDIR/baresip-alice/rec" -name '*-dec.wav' | head -1)
    [[ -n $rec ]] || fail "media browser->baresip: baresip recorded nothing (no -dec.wav)"
    recording_heard baresip "$rec"
}

# page_heard PEER: the page's remote audio is PEER's 1000 Hz tone in most 500 ms windows.
page_heard() {
    local l
    note "$(out stats)"
    l=$(out audio)
    [[ -n $l ]] || fail "media: the page did not analyse the remote audio: $(out audio-failed)"
    heard_mostly "$l" 1000 ||
        fail "media $1->browser: the page's remote audio is not 1000 Hz (dominant Hz per 500 ms: ${l#audio * })"
}

# heard_mostly "audio RATE HZ..." HZ: at least 4 windows, most of them HZ (±15).
heard_mostly() {
    local hzs h total=0 hit=0
    read -r _ _ hzs <<< "$1"
    for h in $hzs; do
        total=$((total + 1))
        ((h >= $2 - 15 && h <= $2 + 15)) && hit=$((hit + 1))
    done
    ((total >= 4 && hit * 2 > total))
}

# recording_heard PEER WAV: PEER's recording of what it received is the browser's 440 Hz.
recording_heard() {
    [[ -s $2 ]] || fail "media browser->$1: $1 recorded nothing ($(basename "$2"))"
    "$PY" "$BROWSER_DIR/tone.py" "$2" 440 3 > "$CDIR/tone-$1.out" 2>&1 ||
        fail "media browser->$1: $1's recording is not 440 Hz: $(tail -1 "$CDIR/tone-$1.out")"
}

# web_call BASE CODEC CODECS AUDIO BROWSER TRANSCODING: the page (bob) calls baresip
# (alice, only CODEC) with the codec list CODECS; checks accepted, both tones, a DTMF digit
# by `sendDTMF` and one by the browser's RTCDTMFSender reaching baresip, the BYE.
web_call() {
    local base=$1 codec=$2 codecs=$3
    web_server "$base"
    web_baresip "$base" "$codec"
    local bench=()
    [[ -z ${WEBPHONE_SERVER_CPU:-} ]] || bench=(--server-pid "$SRV")
    wp call --target "sip:alice@127.0.0.1:$UDP" --codecs "$codecs" --baresip-ctrl "$CTRL" \
        --password bobpw --seconds "$SECS" "${bench[@]}" || fail "webphone.js failed: $(wp_why)"
    check_accepted "$4" "$5" "$6"
    [[ -n $(out 'baresip CALL_ESTABLISHED') ]] || fail "baresip never reported CALL_ESTABLISHED"
    check_media
    [[ -n $(out dtmf-api) ]] || fail "sendDTMF 5 never reached baresip: $(out dtmf-api-missing)"
    [[ -n $(out dtmf-browser) ]] || fail "the browser's RTCDTMFSender 7 never reached baresip: $(out dtmf-browser-missing)"
    [[ $(out bye) == *'"type":"result"'* && $(out bye) != *error* ]] || fail "bye: $(out bye)"
    [[ -n $(out 'baresip CALL_CLOSED') ]] || fail "the page hung up but baresip never saw the BYE"
    stop_server "$SRV" srv
}

# 1. Page → baresip, PCMU on both legs: passed through, each packet forwarded as it
#    arrives (web.packet_clock = false; the other calls run on the packet clock), except
#    when bench/web/run.sh measures the server's CPU (then all run the default).
check_webphone_calls_baresip_pcmu() {
    if [[ -n ${WEBPHONE_SERVER_CPU:-} ]]; then
        web_call 18400 PCMU "pcmu dtmf" pcmu pcmu false
        return
    fi
    SWITCHBOARD_WEB_PACKET_CLOCK=false web_call 18400 PCMU "pcmu dtmf" pcmu pcmu false
    grep -q 'forwarded per packet' "$CDIR/srv.out" ||
        fail "web.packet_clock = false was not in effect: $(grep WebRTC "$CDIR/srv.out")"
}

# 2. Page → baresip, Opus on both legs: passed through.
check_webphone_calls_baresip_opus() {
    web_call 18500 opus/48000/2 "opus dtmf" opus opus false
}

# 3. Page → baresip with "opus pcmu": the browser leg is Opus, baresip has only PCMU, so
#    the server transcodes Opus ↔ PCMU.
check_webphone_transcodes_opus_pcmu() {
    web_call 18600 PCMU "opus pcmu dtmf" pcmu opus true
}

# 4. baresip → page: the page accepts the `invited` call; baresip hangs up and the page
#    gets `byed`.
check_baresip_calls_webphone() {
    web_server 18700
    web_baresip 18700 PCMU
    wp answer --dial "sip:bob@127.0.0.1:$UDP" --codecs "pcmu opus dtmf" --baresip-ctrl "$CTRL" \
        --password bobpw || fail "webphone.js failed: $(wp_why)"
    [[ $(out from) == *'sip:alice@127.0.0.1'* ]] || fail "invited from '$(out from)', not alice"
    check_accepted pcmu pcmu false
    check_media
    [[ $(out remote-hangup) == 'remote-hangup ok' ]] || fail "baresip could not hang up: $(out remote-hangup)"
    [[ -n $(out byed) ]] || fail "baresip hung up but the page got no byed: $(out byed-timeout)"
    stop_server "$SRV" srv
}

# 5. A wrong password: the page is told the registrar's refusal.
check_webphone_wrong_password() {
    web_server 18800
    wp connect --password wrong || fail "webphone.js failed: $(wp_why)"
    local l
    l=$(out refused)
    [[ $l =~ ^refused\ (401|403)\  ]] || fail "wrong password: expected 'refused 401/403 ...', got '${l:-$(tail -1 "$CDIR/wp.out")}'"
    note "$l"
    stop_server "$SRV" srv
}

# 6. Closing the tab during a call hangs up at baresip within 5 s.
check_webphone_tab_closed() {
    web_server 18900
    web_baresip 18900 PCMU
    wp close-tab --target "sip:alice@127.0.0.1:$UDP" --codecs "pcmu" --baresip-ctrl "$CTRL" \
        --password bobpw || fail "webphone.js failed: $(wp_why)"
    [[ -n $(out 'baresip CALL_ESTABLISHED') ]] || fail "the call never came up at baresip: $(wp_why)"
    local l ms
    l=$(out far-end-closed)
    [[ -n $l ]] || fail "tab closed: baresip saw no BYE within 10 s"
    ms=${l#far-end-closed }
    ((ms <= 5000)) || fail "tab closed: baresip saw the BYE only after $ms ms"
    note "BYE at baresip $ms ms after the tab closed"
    stop_server "$SRV" srv
}

# 7. The page (bob) calls the RTMP phone client (alice, `rtmp-phone --answer` with the
#    Flash VideoPhone's codec list) through the all-in-one: Opus from the browser to the
#    gateway's line, which transcodes it to and from the rtmp-phone's Speex: each hears the other's tone; the page hangs up and the
#    rtmp-phone gets `byed`.
check_webphone_calls_rtmp_phone() {
    aio_server 19000
    rtmp_phone_alice --answer --wait $((30 + 2 * SECS))
    gateway_wait_line alice '^connected' 15
    wp call --target sip:alice@127.0.0.1 --codecs "opus dtmf" --password bobpw \
        --seconds "$SECS" || fail "webphone.js failed: $(wp_why)"
    check_accepted opus opus false
    [[ $(out bye) == *'"type":"result"'* && $(out bye) != *error* ]] || fail "bye: $(out bye)"
    wait "$ALICE" || fail "rtmp-phone alice exited non-zero: $(tail -1 "$CDIR/alice.err")"
    grep -qE '^invited .*sip:bob@127.0.0.1' "$CDIR/alice.out" || fail "rtmp-phone: no invited from bob"
    grep -q '^accepted speex' "$CDIR/alice.out" || fail "rtmp-phone: no accepted speex: $(tr '\n' '|' < "$CDIR/alice.out")"
    grep -q '^byed' "$CDIR/alice.out" || fail "the page hung up but the rtmp-phone got no byed"
    page_heard rtmp-phone
    recording_heard rtmp-phone "$CDIR/alice.wav"
    stop_server "$SRV" srv
}

# 8. The RTMP phone client (alice, PCMU only) calls the page (bob) through the all-in-one;
#    the page accepts the `invited` call; each hears the other's tone; the rtmp-phone hangs
#    up and the page gets `byed`.
check_rtmp_phone_calls_webphone() {
    aio_server 19100
    wp_bg answer --codecs "pcmu opus dtmf" --password bobpw --seconds "$SECS" --timeout 20000
    gateway_wait_line wp '^connected' 20
    rtmp_phone_alice --call sip:bob@127.0.0.1 --codecs "pcmu dtmf" --duration $((SECS + 4))
    wait "$ALICE" || fail "rtmp-phone alice exited non-zero: $(tail -1 "$CDIR/alice.err")"
    wait "$WP" || fail "webphone.js failed: $(wp_why)"
    [[ $(out from) == *'sip:alice@127.0.0.1'* ]] || fail "invited from '$(out from)', not alice"
    check_accepted pcmu pcmu false
    grep -q '^accepted pcmu' "$CDIR/alice.out" || fail "rtmp-phone: no accepted pcmu: $(tr '\n' '|' < "$CDIR/alice.out")"
    page_heard rtmp-phone
    recording_heard rtmp-phone "$CDIR/alice.wav"
    [[ -n $(out byed) ]] || fail "the rtmp-phone hung up but the page got no byed: $(out byed-timeout)"
    stop_server "$SRV" srv
}

# 9. A JsSIP UA in a second browser (alice, registered over SIP-over-WebSocket at /sip of the
#    all-in-one, DTLS-SRTP to the server) calls the page (bob); the page accepts; each page
#    hears the other's fake microphone; JsSIP hangs up and the page gets `byed`.
check_jssip_calls_webphone() {
    aio_server 19200
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone1000-48k.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write tone1000-48k.wav"
    wp_bg answer --codecs "opus pcmu dtmf" --password bobpw --seconds "$SECS" --timeout 25000
    gateway_wait_line wp '^connected' 20
    timeout -k 3 $((40 + 2 * SECS)) node "$BROWSER_DIR/driver.js" call --work "$CDIR/jssip" \
        --ws "ws://127.0.0.1:$HTTP/sip" --uri sip:alice@127.0.0.1 --password alicepw \
        --wav "$CDIR/tone1000-48k.wav" --target sip:bob@127.0.0.1 --seconds "$((SECS + 3))" \
        > "$CDIR/jssip.out" 2> "$CDIR/jssip.err" < /dev/null ||
        fail "driver.js (JsSIP) failed: $(grep -E '^(register-failed|call-failed|error)' "$CDIR/jssip.out" | head -1)"
    wait "$WP" || fail "webphone.js failed: $(wp_why)"
    [[ $(out from) == *'sip:alice@127.0.0.1'* ]] || fail "invited from '$(out from)', not alice"
    note "$(out accepted)"
    page_heard JsSIP
    local l
    l=$(grep -m1 '^audio ' "$CDIR/jssip.out" || true)
    [[ -n $l ]] || fail "the JsSIP page did not analyse its remote audio"
    heard_mostly "$l" 440 || fail "media browser->JsSIP: the JsSIP page's remote audio is not 440 Hz: $l"
    [[ -n $(out byed) ]] || fail "JsSIP hung up but the page got no byed: $(out byed-timeout); $(jssip_bye_trace)"
    stop_server "$SRV" srv
}

# 10. An echo test: the page calls a raw RTP reflector (sipp's uas with -rtp_echo, PCMU
#     only, on 127.0.0.2: not the server's domain, so the proxy routes to it by address)
#     with "opus pcmu", so the line transcodes Opus <-> PCMU, and hears its own 440 Hz back. The echo carries the line's own SSRC: an RFC 3550 §8.2 collision, after which
#     the line must keep its new SSRC and play the loop (it used to move on every echoed
#     packet, each new source on probation: silence).
check_webphone_calls_echo_test() {
    local echo=19350
    need sipp "apt-get install sip-tester"
    web_server 19300
    spawn echo sipp -sn uas -i 127.0.0.2 -p $echo -mi 127.0.0.2 -mp $((echo + 2)) -rtp_echo \
        -m 1 -timeout $((40 + 2 * SECS))s -nostdin
    local end=$((SECONDS + 10))
    until ss -Hlun "sport = :$((echo + 2))" | grep -q .; do
        kill -0 "$LAST_PID" 2> /dev/null || fail "sipp (echo) exited: $(tail -2 "$CDIR/echo.err")"
        ((SECONDS < end)) || fail "sipp's RTP echo not bound after 10 s"
        sleep 0.1
    done
    wp call --target "sip:echo@127.0.0.2:$echo" --codecs "opus pcmu dtmf" --password bobpw \
        --seconds "$SECS" || fail "webphone.js failed: $(wp_why)"
    check_accepted pcmu opus true
    local l
    l=$(out audio)
    [[ -n $l ]] || fail "media: the page did not analyse the remote audio: $(out audio-failed)"
    heard_mostly "$l" 440 ||
        fail "the page did not hear its own 440 Hz back (dominant Hz per 500 ms: ${l#audio * })"
    [[ $(out bye) == *'"type":"result"'* && $(out bye) != *error* ]] || fail "bye: $(out bye)"
    stop_server "$SRV" srv
}

# jssip_bye_trace: what became of JsSIP's BYE: the driver's last steps, the responses
# JsSIP got to a BYE (its debug log) and the BYEs the server received and sent on.
jssip_bye_trace() {
    local got srv
    got=$(tr -d '\r' < "$CDIR/jssip.err" | awk '
        /^SIP\/2\.0 [0-9]+/ { st = $2 " " $3 }
        /^$/ { st = "" }
        /^CSeq: [0-9]+ BYE/ && st { printf "%s%s", sep, st; sep = ", "; st = "" }')
    srv=$(sed 's/\x1b\[[0-9;]*m//g' "$CDIR/srv.err" | grep -cE ' recv BYE ' || true)
    srv="$srv received, $(sed 's/\x1b\[[0-9;]*m//g' "$CDIR/srv.err" | grep -cE ' send BYE ' || true) sent on"
    echo "JsSIP's last steps: $(tail -3 "$CDIR/jssip.out" | cut -c1-80 | paste -sd'|' -); responses to its BYE: ${got:-none}; server BYEs: $srv"
}

[[ ${1:-} == --inside ]] && netns_inside "$2"
interop_single() { netns_single "$HERE/webphone.sh" "$1"; }
interop_setup() { browser_npm; }
interop_main "$HERE/webphone.sh" "$@"
