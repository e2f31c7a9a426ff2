#!/usr/bin/env bash
# Browser interop checks for `switchboard sipd`: a UDP softphone (baresip) and a web phone
# (JsSIP in headless Chromium, SIP over WebSocket per RFC 7118) call each other through
# switchboard, with WebRTC media (ICE + DTLS-SRTP) flowing directly between them.
#
# usage: tests/interop/browser.sh [CHECK...]  (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs and traces (default: tests/interop/out;
#                      a check's directory is wiped when it starts)
#
# Prints "PASS name" or "FAIL name: why" per check, then "N passed, M failed".
# Exits non-zero if any check failed.
#
# Each check runs in its own network namespace that has nothing but the loopback device, so
# neither Chromium (whose ICE would otherwise offer the machine's external addresses) nor
# anything else can reach beyond this machine. Besides 127.0.0.1, `lo` gets the address
# 198.18.0.1/32 (RFC 2544 benchmarking range): baresip's ICE never offers loopback
# addresses as candidates, and Chromium will not talk to a WebRTC peer without candidates.
# The server, baresip and Chromium listen on 127.0.0.1 (ports 18000-18999); the media then
# flows between 127.0.0.1 and 198.18.0.1, all inside the namespace.
#
# Needs: root (ip netns), iproute2, chromium (Debian's /usr/bin/chromium; never downloaded),
# node + npm (`npm ci` in tests/interop/browser when node_modules is missing), baresip
# (baresip-core), sox, sipp (sip-tester), python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROWSER_DIR=$HERE/browser

# shellcheck source=lib.sh
source "$HERE/lib.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    browser_calls_baresip:90
    baresip_calls_browser:90
    browser_binding_gone:90
)

# The address added to the namespace's lo for baresip's ICE candidates (see above).
ICE_ADDR=198.18.0.1

need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" > /dev/null || fail "$cmd not installed ($pkg)"
}

# tones: tone440.wav (48 kHz, Chromium's fake microphone) and tone1000.wav (8 kHz, baresip's
# source for PCMU; aufile needs the codec's rate).
make_tones() {
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 ||
        fail "sox could not write tone440.wav"
    sox -n -r 8000 -c 1 -b 16 "$CDIR/tone1000.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write tone1000.wav"
}

# mk_alice SIP_PORT CTRL_PORT RTP_FIRST SERVER_PORT: baresip config for alice (UDP, digest,
# auto-answer) with WebRTC-compatible media: ICE, DTLS-SRTP (UDP/TLS/RTP/SAVPF), RTP/RTCP
# multiplexing (Chromium requires it), PCMU from tone1000.wav; sndfile records what it
# sends (-enc.wav) and receives (-dec.wav) in baresip-alice/rec/.
mk_alice() {
    local sport=$1 cport=$2 rtp=$3 srv=$4 dir=$CDIR/baresip-alice
    mkdir -p "$dir/rec"
    short_link "$dir/rec"
    cat > "$dir/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$sport
call_local_timeout	120
audio_player		alsa,null
audio_source		aufile,$CDIR/tone1000.wav
audio_alert		alsa,null
rtp_ports		$rtp-$((rtp + 19))
rtcp_mux		yes
jitter_buffer_delay	5-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			aufile.so
module			sndfile.so
module			ice.so
module			dtls_srtp.so
module_tmp		uuid.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$cport
snd_path		$LAST_LINK
EOF
    echo "<sip:alice@127.0.0.1:$srv>;auth_pass=alicepw;answermode=auto;audio_codecs=PCMU;medianat=ice;mediaenc=dtls_srtp;regint=600" \
        > "$dir/accounts"
}

# call_setup BASE: server (udp BASE, ws BASE+2, `-d`), baresip alice (sip BASE+10, ctrl
# BASE+20, rtp BASE+30..49) registered, tones made. Sets UDP, HTTP, CTRL.
call_setup() {
    local base=$1
    need chromium "apt-get install chromium"
    need node "apt-get install nodejs npm"
    need baresip "apt-get install baresip-core"
    need sox "apt-get install sox"
    UDP=$base HTTP=$((base + 2)) CTRL=$((base + 20))
    write_users "$CDIR/users.toml" alice=alicepw bob=bobpw
    make_tones
    start_server srv -l "127.0.0.1:$UDP" -t udp -l "127.0.0.1:$HTTP" -t ws \
        --users "$CDIR/users.toml" --data "$CDIR/data" -d
    SRV=$LAST_PID
    wait_udp "$UDP" "$SRV"
    wait_http "$HTTP" "$SRV"
    mk_alice $((base + 10)) "$CTRL" $((base + 30)) "$UDP"
    spawn baresip baresip -f "$CDIR/baresip-alice" -v
    BARESIP=$LAST_PID
    local end=$((SECONDS + 10)) reg=
    while ((SECONDS < end)); do
        reg=$(timeout 6 "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd "$CTRL" reginfo 2> /dev/null |
            sed -E 's/\x1b\[[0-9;]*m//g' | grep -E '^[> ] *sip:' || true)
        grep -qw OK <<< "$reg" && return 0
        kill -0 "$BARESIP" 2> /dev/null || fail "baresip exited: $(tail -2 "$CDIR/baresip.err" | tr '\n' ' ')"
        sleep 0.3
    done
    fail "baresip (alice) not registered after 10 s: ${reg:-no reginfo} $(grep -a 'reg:\|[0-9]\{3\} ' "$CDIR/baresip.out" |
        sed -E 's/\x1b\[[0-9;]*m//g' | tail -1)"
}

# baresip_quit: stop baresip while the server still answers its un-REGISTER.
baresip_quit() {
    timeout 6 "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd "$CTRL" quit > /dev/null 2>&1 || true
    local end=$((SECONDS + 3))
    while ((SECONDS < end)) && kill -0 "$BARESIP" 2> /dev/null; do sleep 0.1; done
}

# driver MODE ARGS...: run browser/driver.js to completion (output driver.out/.err).
driver() {
    local mode=$1
    shift
    local rc=0
    timeout -k 3 60 node "$BROWSER_DIR/driver.js" "$mode" --work "$CDIR/web" \
        --ws "ws://127.0.0.1:$HTTP/sip" --uri sip:bob@127.0.0.1 --password bobpw \
        --wav "$CDIR/tone440.wav" --baresip-ctrl "$CTRL" "$@" \
        > "$CDIR/driver.out" 2> "$CDIR/driver.err" < /dev/null || rc=$?
    return "$rc"
}

# line WORD: the first line of driver.out starting with WORD (empty if none).
line() {
    grep -m1 -E "^$1( |$)" "$CDIR/driver.out" || true
}

# driver_why: the most telling thing the driver said when it stopped short.
driver_why() {
    local last
    last=$(grep -E '^(register-failed|call-failed|error|audio-failed|baresip-not)' "$CDIR/driver.out" | head -1 || true)
    [[ -n $last ]] || last="last step: $(tail -1 "$CDIR/driver.out" 2> /dev/null | cut -c1-160)"
    [[ -n $last ]] || last="no output; stderr: $(tail -2 "$CDIR/driver.err" | tr '\n' ' ' | cut -c1-200)"
    echo "$last"
}

# check_signalling DIRECTION: the driver's view of one call (registration, confirmed on the
# page, CALL_ESTABLISHED at baresip, the BYE reaching the other side).
check_signalling() {
    local dir=$1 l
    [[ -n $(line registered) ]] || fail "JsSIP did not register: $(driver_why)"
    [[ -n $(line confirmed) ]] || fail "call $dir not confirmed on the page: $(driver_why)"
    [[ -n $(line 'baresip CALL_ESTABLISHED') ]] ||
        fail "call $dir confirmed on the page but baresip never reported CALL_ESTABLISHED"
    if [[ $dir == browser-to-baresip ]]; then
        l=$(line ended)
        [[ $l == 'ended local'* ]] || fail "after the page hung up: '${l:-no ended event}'"
        [[ -n $(line 'baresip CALL_CLOSED') ]] ||
            fail "the page hung up but baresip never reported CALL_CLOSED (BYE lost?)"
    else
        [[ $(line remote-hangup) == 'remote-hangup ok' ]] ||
            fail "baresip could not hang up: $(line remote-hangup)"
        l=$(line ended)
        [[ $l == 'ended remote'* ]] ||
            fail "baresip hung up but the page saw '${l:-nothing}' (BYE did not reach the WebSocket)"
    fi
}

# check_media: both directions of audio. The page heard baresip's 1000 Hz (dominant
# frequency of the remote stream per 500 ms window, WebAudio) and baresip recorded the
# browser's 440 Hz (dominant frequency per second of its -dec.wav).
check_media() {
    local l hzs total=0 hit=0 h rec stats
    stats=$(line stats)
    note "page stats: ${stats#stats }"
    l=$(line audio)
    [[ -n $l ]] || fail "media: the page did not analyse the remote audio: $(line audio-failed)"
    read -r _ _ hzs <<< "$l"
    for h in $hzs; do
        total=$((total + 1))
        ((h >= 985 && h <= 1015)) && hit=$((hit + 1))
    done
    ((total >= 4 && hit * 2 > total)) ||
        fail "media baresip->browser: the page's remote audio is not a 1000 Hz tone (dominant Hz per 500 ms: $hzs; $(
            sed -E 's/.*"inbound":(\{[^}]*\}).*/inbound \1/' <<< "$stats" | cut -c1-120))"
    rec=$(find "$CDIR/baresip-alice/rec" -name '*-dec.wav' | head -1)
    [[ -n $rec ]] || fail "media browser->baresip: baresip recorded nothing (no -dec.wav)"
    "$PY" "$BROWSER_DIR/tone.py" "$rec" 440 3 > "$CDIR/tone-baresip.out" 2>&1 ||
        fail "media browser->baresip: baresip's recording is not a 440 Hz tone: $(tail -1 "$CDIR/tone-baresip.out")"
}

# 1. JsSIP (bob, in Chromium) calls alice (baresip over UDP, auto-answer) through switchboard;
#    ~5 s of audio each way, then the page hangs up.
check_browser_calls_baresip() {
    call_setup 18000
    driver call --target "sip:alice@127.0.0.1:$UDP" --seconds 5 ||
        fail "driver failed: $(driver_why)"
    check_signalling browser-to-baresip
    check_media
    baresip_quit
    stop_server "$SRV" srv
}

# 2. alice (baresip) dials sip:bob@...; the page auto-answers; ~5 s of audio each way, then
#    baresip hangs up and the BYE must reach the page over its WebSocket.
check_baresip_calls_browser() {
    call_setup 18100
    driver answer --dial "sip:bob@127.0.0.1:$UDP" --seconds 5 ||
        fail "driver failed: $(driver_why)"
    local from
    from=$(line confirmed)
    [[ $from == 'confirmed sip:alice@'* ]] || fail "the page answered a call from '${from#confirmed }', not alice"
    check_signalling baresip-to-browser
    check_media
    baresip_quit
    stop_server "$SRV" srv
}

# wait_out PATTERN SECONDS: wait until driver.out has a line matching PATTERN.
wait_out() {
    local end=$((SECONDS + $2))
    while ((SECONDS < end)); do
        grep -qE "$1" "$CDIR/driver.out" 2> /dev/null && return 0
        kill -0 "$DRIVER" 2> /dev/null || break
        sleep 0.2
    done
    grep -qE "$1" "$CDIR/driver.out" 2> /dev/null
}

# bob_contacts LABEL: bob's bindings, as the registrar lists them to a sipp query over UDP.
bob_contacts() {
    query_contacts "$1" "$UDP" bob 127.0.0.1 -au bob -ap bobpw
}

# bob_gone LABEL: within 5 s bob has no binding left.
bob_gone() {
    local label=$1 i=0 c end=$((SECONDS + 6))
    while ((SECONDS < end)); do
        i=$((i + 1))
        c=$(bob_contacts "$label-$i") || exit 1
        [[ -z $c ]] && return 0
        sleep 0.5
    done
    fail "$label: 5 s later bob's binding is still listed: ${c//$'\n'/ | }"
}

# bob_listed LABEL: the registrar lists the page's *.invalid;transport=ws contact.
bob_listed() {
    local c
    c=$(bob_contacts "$1") || exit 1
    grep -qE '^<sip:[^@>]+@[^>]+\.invalid;transport=ws>;expires=[0-9]+' <<< "$c" ||
        fail "$1: while the page is registered the query lists '${c//$'\n'/ | }', no *.invalid;transport=ws contact"
}

# 3. The page's registration lives as long as its WebSocket: closing the tab removes bob's
#    binding, and so does killing the browser outright (SIGKILL: no close frame).
check_browser_binding_gone() {
    need chromium "apt-get install chromium"
    need node "apt-get install nodejs npm"
    need sipp "apt-get install sip-tester"
    UDP=18200 HTTP=18202 CTRL=
    SIPP_PORT=18204 # lib.sh's sipp_run (query_contacts)
    export SIPP_PORT
    write_users "$CDIR/users.toml" alice=alicepw bob=bobpw
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 || fail "sox failed"
    start_server srv -l "127.0.0.1:$UDP" -t udp -l "127.0.0.1:$HTTP" -t ws \
        --users "$CDIR/users.toml" --data "$CDIR/data" -d
    SRV=$LAST_PID
    wait_udp "$UDP" "$SRV"
    wait_http "$HTTP" "$SRV"

    mkfifo "$CDIR/driver.in"
    node "$BROWSER_DIR/driver.js" register --work "$CDIR/web" \
        --ws "ws://127.0.0.1:$HTTP/sip" --uri sip:bob@127.0.0.1 --password bobpw \
        --wav "$CDIR/tone440.wav" < "$CDIR/driver.in" > "$CDIR/driver.out" 2> "$CDIR/driver.err" &
    DRIVER=$!
    PIDS+=("$DRIVER")
    exec 3> "$CDIR/driver.in"

    wait_out '^(registered|register-failed|error)' 20 || true
    [[ -n $(line registered) ]] || fail "JsSIP did not register: $(driver_why)"
    bob_listed tab-open
    echo close-page >&3
    wait_out '^page-closed' 10 || fail "the driver could not close the tab: $(driver_why)"
    bob_gone tab-closed

    echo reopen >&3
    local end=$((SECONDS + 20))
    while ((SECONDS < end)) && [[ $(grep -c '^registered' "$CDIR/driver.out") -lt 2 ]]; do
        grep -qE '^(register-failed|error)' "$CDIR/driver.out" && break
        sleep 0.2
    done
    [[ $(grep -c '^registered' "$CDIR/driver.out") -ge 2 ]] ||
        fail "JsSIP in a new tab did not register: $(driver_why)"
    bob_listed second-tab
    echo kill-browser >&3
    wait_out '^browser-killed [0-9]+' 10 || fail "could not kill Chromium: $(line browser-killed)"
    bob_gone browser-killed
    echo quit >&3
    exec 3>&-
    stop_server "$SRV" srv
}

[[ ${1:-} == --inside ]] && netns_inside "$2"
interop_single() { netns_single "$HERE/browser.sh" "$1"; }
interop_setup() { browser_npm; }
interop_main "$HERE/browser.sh" "$@"
