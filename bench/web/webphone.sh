#!/usr/bin/env bash
# Issue 8 benchmarks against the all-in-one (release build, configured by a file), each in a
# loopback-only network namespace like tests/interop/webphone.sh:
#   web_first_audio  answer → first audio, page to page (first_audio.js): per call, bob's
#                    `accept` leaving his page → the first remote audio decoded on alice's
#                    page (both tabs in one Chromium, one clock); CALLS calls.
#   web_sessions     concurrent /phone sessions (sessions.js): signed-in lines, ramped up
#                    in STEPS, with the server's RSS and CPU while holding them.
#   web_calls        server CPU with CALLS page-to-page calls up at once (calls.js): over
#                    CALL_SECONDS idle (all tabs signed in), then with every call up.
#   web_sip_calls    the same with CALLS pages each calling one SIP phone (a sipp UAS that
#                    answers PCMU and plays a tone): CODECS="pcmu dtmf" passes through,
#                    CODECS="opus pcmu dtmf" transcodes Opus <-> PCMU.
#   rtpengine_sip_calls  the anchor for web_sip_calls: the same calls with rtpengine (apt
#                    rtpengine-daemon) bridging WebRTC and RTP (rtpengine.js), its CPU.
#   janus_sip_calls  the same with Janus's SIP plugin (apt janus; janus.js), pass-through only.
# Usage: bench/web/webphone.sh [CHECK...]   (env: CALLS=10, CODECS="opus pcmu dtmf",
#        CALLEE_CODECS (web_calls: the callees' codecs, default CODECS),
#        STEPS="250 500 1000 2000 4000", CALL_SECONDS=10, SWITCHBOARD=prebuilt release
#        binary, else built).
# Needs what webphone.sh needs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# shellcheck source=../../tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
# shellcheck source=../../tests/interop/aio.sh
source "$ROOT/tests/interop/aio.sh"

export CALLS=${CALLS:-10} CODECS=${CODECS:-opus pcmu dtmf} STEPS=${STEPS:-250 500 1000 2000 4000}
export CALL_SECONDS=${CALL_SECONDS:-10} CALLEE_CODECS=${CALLEE_CODECS:-$CODECS}
ALL_CHECKS=(web_first_audio:$((60 + 8 * CALLS)) web_sessions:600
    web_calls:$((60 + 4 * CALLS + 2 * CALL_SECONDS))
    web_sip_calls:$((60 + 4 * CALLS + 2 * CALL_SECONDS))
    rtpengine_sip_calls:$((60 + 4 * CALLS + 2 * CALL_SECONDS))
    janus_sip_calls:$((60 + 4 * CALLS + 2 * CALL_SECONDS)))
ICE_ADDR=198.18.0.1

# users_file N [LINE...]: $CDIR/users.toml with users u1..uN (password pwI) and LINEs.
users_file() {
    local n=$1 i
    shift
    {
        echo "[users]"
        (($# == 0)) || printf '%s\n' "$@"
        for ((i = 1; i <= n; i++)); do echo "u$i = \"pw$i\""; done
    } > "$CDIR/users.toml"
}

check_web_first_audio() {
    SWITCHBOARD_LOG=info aio_server 19500
    timeout $((40 + 8 * CALLS)) node "$HERE/first_audio.js" --work "$CDIR/web" --http "$HTTP" \
        --wav "$CDIR/tone440.wav" --calls "$CALLS" --codecs "$CODECS" \
        > "$CDIR/bench.out" 2> "$CDIR/bench.err" < /dev/null ||
        fail "first_audio.js: $(grep -E '^(error|call-failed)' "$CDIR/bench.out" | head -1)"
    grep -q '^first-audio-ms ' "$CDIR/bench.out" || fail "no measurement: $(tail -1 "$CDIR/bench.out")"
}

# Users u1..uN from a users file and the /phone limits raised, both through the
# environment (SWITCHBOARD_<SECTION>_<KEY>) over aio_server's config file.
check_web_sessions() {
    local max=0 s
    for s in $STEPS; do ((s > max)) && max=$s; done
    users_file "$max"
    ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
    SWITCHBOARD_LOG=warn SWITCHBOARD_SIP_USERS_FILE=$CDIR/users.toml \
        SWITCHBOARD_WEB_MAX_PER_IP=$((max + 10)) SWITCHBOARD_WEB_MAX_SOCKETS=$((max + 10)) \
        aio_server 19600
    timeout 560 node --experimental-websocket "$HERE/sessions.js" --http "$HTTP" --pid "$SRV" \
        --steps "$STEPS" > "$CDIR/bench.out" 2> "$CDIR/bench.err" < /dev/null ||
        fail "sessions.js: $(grep -E '^error' "$CDIR/bench.out" | head -1)"
    grep -q '^step ' "$CDIR/bench.out" || fail "no measurement: $(tail -1 "$CDIR/bench.out")"
}

# calls_js ARGS...: calls.js against the server aio_server started, CALLS calls up for
# CALL_SECONDS, the measurement in $CDIR/bench.out.
calls_js() {
    timeout $((40 + 4 * CALLS + 2 * CALL_SECONDS)) node "$HERE/calls.js" --work "$CDIR/web" \
        --http "$HTTP" --wav "$CDIR/tone440.wav" --pid "$SRV" --calls "$CALLS" \
        --seconds "$CALL_SECONDS" --codecs "$CODECS" "$@" \
        > "$CDIR/bench.out" 2> "$CDIR/bench.err" < /dev/null ||
        fail "calls.js: $(grep -E '^(error|call-failed)' "$CDIR/bench.out" | head -1)"
    grep -q '^server-calls-cpu ' "$CDIR/bench.out" || fail "no measurement: $(tail -1 "$CDIR/bench.out")"
}

# Users u1..u(2·CALLS) as for web_sessions; logging at warn, as a loaded server would run.
check_web_calls() {
    users_file $((2 * CALLS))
    SWITCHBOARD_LOG=warn SWITCHBOARD_SIP_USERS_FILE=$CDIR/users.toml aio_server 19700
    calls_js --callee-codecs "$CALLEE_CODECS"
}

# u1, u3, … (the callers of web_calls) call sip:phone@127.0.0.1: sipp registers "phone"
# with digest (reg_auth.xml, its Contact the port it sends from) and exits; a sipp UAS on
# that port (phone_uas.xml) answers every call with PCMU and plays a 1000 Hz tone into it.
check_web_sip_calls() {
    command -v sipp > /dev/null || fail "sipp not installed (apt-get install sip-tester)"
    users_file $((2 * CALLS)) 'phone = "phonepw"'
    SWITCHBOARD_LOG=${SWITCHBOARD_LOG:-warn} SWITCHBOARD_SIP_USERS_FILE=$CDIR/users.toml aio_server 19800
    sox -n -r 8000 -c 1 -e u-law "$CDIR/tone1000-ulaw.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write the phone's tone"
    local phone=19890
    printf 'SEQUENTIAL\nphone;phonepw\n' > "$CDIR/phone.csv"
    timeout 20 sipp -sf "$ROOT/tests/interop/sipp/reg_auth.xml" -inf "$CDIR/phone.csv" \
        -i 127.0.0.1 -p $phone -m 1 -nostdin -timeout 15s 127.0.0.1:"$UDP" \
        > "$CDIR/reg.out" 2>&1 || fail "sipp could not register the phone (see reg.out)"
    sed "s|TONE_WAV|$CDIR/tone1000-ulaw.wav|" "$HERE/phone_uas.xml" > "$CDIR/phone_uas.xml"
    spawn phone sipp -sf "$CDIR/phone_uas.xml" \
        -i 127.0.0.1 -p $phone -mp $((phone + 2)) -nostdin -trace_err -error_file "$CDIR/phone.log"
    calls_js --callee-uri "sip:phone@127.0.0.1"
}

# The anchor: the same calls with rtpengine bridging WebRTC and RTP instead of Switchboard
# (rtpengine.js sends the INVITEs itself and drives rtpengine over its ng protocol).
# rtpengine runs in userspace (no kernel forwarding module here), logging at warn.
check_rtpengine_sip_calls() {
    local need
    for need in rtpengine sipp chromium node sox; do
        command -v "$need" > /dev/null || fail "$need not installed (apt-get install rtpengine-daemon sip-tester)"
    done
    sox -n -r 8000 -c 1 -e u-law "$CDIR/tone1000-ulaw.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write the phone's tone"
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 ||
        fail "sox could not write the microphone's tone"
    local phone=19890 ng=19822
    sed "s|TONE_WAV|$CDIR/tone1000-ulaw.wav|" "$HERE/phone_uas.xml" > "$CDIR/phone_uas.xml"
    spawn phone sipp -sf "$CDIR/phone_uas.xml" \
        -i 127.0.0.1 -p $phone -mp $((phone + 2)) -nostdin -trace_err -error_file "$CDIR/phone.log"
    spawn rtpengine rtpengine --config-file=none --foreground --log-stderr --log-level=4 \
        --table=-1 --interface="$ICE_ADDR" --listen-ng=127.0.0.1:$ng \
        --port-min=30000 --port-max=30999
    local rtpe=$LAST_PID
    sleep 1
    kill -0 "$rtpe" 2> /dev/null || fail "rtpengine did not start: $(tail -3 "$CDIR/rtpengine.err")"
    local transcode=()
    [[ $CODECS == *opus* ]] && transcode=(--transcode 1)
    timeout $((40 + 4 * CALLS + 2 * CALL_SECONDS)) node "$HERE/rtpengine.js" --work "$CDIR/web" \
        --wav "$CDIR/tone440.wav" --pid "$rtpe" --ng $ng --phone $phone --calls "$CALLS" \
        --seconds "$CALL_SECONDS" "${transcode[@]}" \
        > "$CDIR/bench.out" 2> "$CDIR/bench.err" < /dev/null ||
        fail "rtpengine.js: $(grep -E '^(error|call-failed)' "$CDIR/bench.out" | head -1)"
    grep -q '^server-calls-cpu ' "$CDIR/bench.out" || fail "no measurement: $(tail -1 "$CDIR/bench.out")"
}

# A second anchor: the same pass-through calls with Janus's SIP plugin bridging WebRTC and
# RTP (janus.js drives its HTTP API; Janus sends the INVITEs). Janus does not transcode.
check_janus_sip_calls() {
    local need
    for need in janus sipp chromium node sox curl; do
        command -v "$need" > /dev/null || fail "$need not installed (apt-get install janus sip-tester)"
    done
    [[ $CODECS != *opus* ]] || fail "janus_sip_calls passes PCMU through (Janus does not transcode): CODECS=\"pcmu dtmf\""
    sox -n -r 8000 -c 1 -e u-law "$CDIR/tone1000-ulaw.wav" synth 30 sine 1000 vol 0.5 ||
        fail "sox could not write the phone's tone"
    sox -n -r 48000 -c 1 -b 16 "$CDIR/tone440.wav" synth 30 sine 440 vol 0.5 ||
        fail "sox could not write the microphone's tone"
    local phone=19890 api=19888 lib=/usr/lib/x86_64-linux-gnu/janus conf=$CDIR/janus
    # Janus gathers no candidates on the loopback device: its ICE address goes on a veth
    # of this namespace (packets to it are still delivered locally, as to ICE_ADDR).
    local janus_addr=198.18.0.2
    ip link add sbj0 type veth peer name sbj1 && ip addr add "$janus_addr/32" dev sbj0 &&
        ip link set sbj0 up && ip link set sbj1 up || fail "could not add a veth for Janus's address"
    sed "s|TONE_WAV|$CDIR/tone1000-ulaw.wav|" "$HERE/phone_uas.xml" > "$CDIR/phone_uas.xml"
    spawn phone sipp -sf "$CDIR/phone_uas.xml" \
        -i 127.0.0.1 -p $phone -mp $((phone + 2)) -nostdin -trace_err -error_file "$CDIR/phone.log"
    mkdir -p "$conf"
    # Only the SIP plugin and the HTTP transport; logging at warn, as the others run.
    cat > "$conf/janus.jcfg" <<EOF
general: { configs_folder = "$conf", plugins_folder = "$lib/plugins",
    transports_folder = "$lib/transports", events_folder = "$lib/events",
    loggers_folder = "$lib/loggers", debug_level = 3 }
media: { rtp_port_range = "30000-30999" }
nat: { ice_enforce_list = "$janus_addr" }
plugins: { disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so" }
transports: { disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }
events: { broadcast = false }
loggers: { disable = "libjanus_jsonlog.so" }
EOF
    cat > "$conf/janus.transport.http.jcfg" <<EOF
general: { base_path = "/janus", http = true, port = $api, ip = "127.0.0.1" }
admin: { admin_http = false }
EOF
    cat > "$conf/janus.plugin.sip.jcfg" <<EOF
general: { local_ip = "127.0.0.1", keepalive_interval = 0, behind_nat = false,
    rtp_port_range = "31000-31999" }
EOF
    spawn janus janus --configs-folder="$conf" --config="$conf/janus.jcfg"
    local jpid=$LAST_PID end=$((SECONDS + 15))
    until curl -sf "http://127.0.0.1:$api/janus/info" > /dev/null; do
        kill -0 "$jpid" 2> /dev/null || fail "janus exited: $(tail -3 "$CDIR/janus.out")"
        ((SECONDS < end)) || fail "janus not answering on http://127.0.0.1:$api/janus after 15 s"
        sleep 0.2
    done
    timeout $((40 + 4 * CALLS + 2 * CALL_SECONDS)) node "$HERE/janus.js" --work "$CDIR/web" \
        --wav "$CDIR/tone440.wav" --pid "$jpid" --api "http://127.0.0.1:$api/janus" \
        --phone "sip:phone@127.0.0.1:$phone" --calls "$CALLS" --seconds "$CALL_SECONDS" \
        > "$CDIR/bench.out" 2> "$CDIR/bench.err" < /dev/null ||
        fail "janus.js: $(grep -E '^(error|call-failed)' "$CDIR/bench.out" | head -1)"
    grep -q '^server-calls-cpu ' "$CDIR/bench.out" || fail "no measurement: $(tail -1 "$CDIR/bench.out")"
}

if [[ ${1:-} != --* ]]; then
    if [[ -z ${SWITCHBOARD:-} ]]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/switchboard-target}
        (cd "$ROOT" && cargo build --release -q -p switchboard --bin switchboard)
        export SWITCHBOARD=$CARGO_TARGET_DIR/release/switchboard
    fi
    export INTEROP_WORK=${INTEROP_WORK:-$HERE/out}
fi
[[ ${1:-} == --inside ]] && netns_inside "$2"
interop_single() { netns_single "$HERE/webphone.sh" "$1"; }
interop_setup() { browser_npm; }
interop_main "$HERE/webphone.sh" "$@" || true

# The summary (only the top-level run gets here).
"$PY" - "$INTEROP_WORK" "$CODECS" <<'PY'
import os, re, statistics, sys
work = sys.argv[1]
def read(check):
    try:
        return open(os.path.join(work, check, "bench.out")).read()
    except OSError:
        return None
text = read("web_first_audio")
if text:
    ms = [int(m) for m in re.findall(r"^first-audio-ms (\d+)$", text, re.M)]
    acc = re.search(r"^accepted (.*)$", text, re.M)
    print(f"codecs offered: {sys.argv[2]}; {acc[1] if acc else ''}")
    if ms:
        print(f"answer -> first audio: median {statistics.median(ms):.0f} ms over {len(ms)} calls "
              f"(min {min(ms)}, max {max(ms)}; all: {', '.join(map(str, ms))})")
for check in ("web_calls", "web_sip_calls", "rtpengine_sip_calls", "janus_sip_calls"):
    text = read(check)
    n = text and re.search(r"^calls (\d+)$", text, re.M)
    idle = text and re.search(r"^server-idle-cpu (\d+) (\d+)$", text, re.M)
    busy = text and re.search(r"^server-calls-cpu (\d+) (\d+)$", text, re.M)
    if n and idle and busy:
        pct = lambda m: int(m[1]) / 1e9 / (int(m[2]) / 1e3) * 100
        calls = int(n[1])
        per = (pct(busy) - pct(idle)) / calls
        if check == "web_calls":
            print(f"web_calls: {calls} page-to-page calls; server CPU idle {pct(idle):.3f} %, "
                  f"with the calls {pct(busy):.3f} %; per call {per:.3f} % of a core, "
                  f"per browser leg {per / 2:.3f} %")
        else:
            print(f"{check}: {calls} browser -> SIP phone calls; server CPU idle "
                  f"{pct(idle):.3f} %, with the calls {pct(busy):.3f} %; per call {per:.3f} % of a core")
text = read("web_sessions")
if text:
    print("| sessions (total) | connected in the step | refused | failed | open after the step | ramp ms | server RSS MiB | server CPU holding them |")
    print("|---|---|---|---|---|---|---|---|")
    for m in re.finditer(r"^step (\d+) connected=(\d+) refused=(\d+) failed=(\d+) open=(\d+) ms=(\d+) rss-mib=(-?\d+) hold-cpu-pct=([\d.]+)$", text, re.M):
        print(f"| {m[1]} | {m[2]} | {m[3]} | {m[4]} | {m[5]} | {m[6]} | {m[7]} | {m[8]} % |")
PY
