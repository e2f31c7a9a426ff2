#!/usr/bin/env bash
# Interop checks for `switchboard rtmp-phone` (the sans-IO RTMP client of switchboard-rtmp
# on tokio): against nginx-rtmp, a server we did not write, it publishes Speex, PCMU and
# PCMA tones that ffmpeg plays back and decodes, and it records what ffmpeg publishes;
# against `switchboard gateway` it calls baresip like a Flash VideoPhone and a wrong
# password is refused with the SIP reason; through the all-in-one `switchboard` it calls
# pjsua2 (speex/16000, passed through) and an Opus-only baresip (transcoded).
#
# usage: tests/interop/rtmp_client.sh [CHECK...]    (default: every check; --list names them)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        INTEROP_WORK  where each check keeps its logs (default: tests/interop/out)
# All traffic stays on 127.0.0.1, ports 22000-22999.
# Needs: nginx-light + libnginx-mod-rtmp, ffmpeg (with libspeex), baresip-core, python3,
#        pjsua2-python (pip: PJSIP's Python bindings).
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

NGINX_RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

# nginx_start PORT: nginx-rtmp, unprivileged (one process, no master), application `live`
# on 127.0.0.1:PORT, its files in $CDIR/nginx.
nginx_start() {
    command -v nginx > /dev/null || fail "nginx not installed (apt-get install nginx-light)"
    [[ -f $NGINX_RTMP_MODULE ]] || fail "no $NGINX_RTMP_MODULE (apt-get install libnginx-mod-rtmp)"
    command -v ffmpeg > /dev/null || fail "ffmpeg not installed (apt-get install ffmpeg)"
    local dir=$CDIR/nginx
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" << EOF
load_module $NGINX_RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
rtmp {
    server {
        listen 127.0.0.1:$1;
        chunk_size 4096;
        application live { live on; }
    }
}
EOF
    spawn nginx nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    wait_port "$1" "$LAST_PID" nginx
}

# tone FILE HZ SECONDS RATE: a test tone with a little noise, so that a Speex decoder that
# joins late still locks on (see proxy_tonecheck.py).
tone() { "$PY" "$INTEROP_DIR/proxy_tonecheck.py" gen "$1" "$2" "$3" "$4" 0.03; }

# tone_ok LABEL WAV EXPECTED OTHER: the recording carries EXPECTED Hz in >= 3 windows.
tone_ok() {
    [[ -s $2 ]] || fail "$1: no recording at $2"
    "$PY" "$INTEROP_DIR/proxy_tonecheck.py" check "$2" "$3" "$4" 3 > "$CDIR/tone-$1.txt" 2>&1 ||
        fail "$1: recorded audio is not $3 Hz: $(tail -1 "$CDIR/tone-$1.txt")"
}

# rtmp_phone LABEL ARGS...: `switchboard rtmp-phone ARGS` in the foreground (bounded);
# its events in LABEL.out, log in LABEL.err; fails the check on a non-zero exit.
rtmp_phone() {
    local label=$1
    shift
    timeout -k 2 40 "$SWITCHBOARD" rtmp-phone "$@" > "$CDIR/$label.out" 2> "$CDIR/$label.err" < /dev/null ||
        fail "rtmp-phone $label exited non-zero: $(tail -1 "$CDIR/$label.err")"
}

# expect_line LABEL PATTERN: LABEL.out has a line matching PATTERN.
expect_line() {
    grep -qE "$2" "$CDIR/$1.out" ||
        fail "$1 printed no '$2' (printed: $(tr '\n' '|' < "$CDIR/$1.out"))"
}

# nginx_publish CODEC PORT: rtmp-phone --no-sip publishes a 1 kHz tone in CODEC on
# live/tone-CODEC (real time, 7 s); ffmpeg, started first, plays that stream from nginx-rtmp
# and decodes 4 s of it; the decoded audio is 1 kHz.
nginx_publish() {
    local codec=$1 port=$2 dec=()
    nginx_start "$port"
    tone "$CDIR/tone1000.wav" 1000 3 48000
    # ffmpeg's native Speex decoder decodes only the first frame of a tag; libspeex all.
    [[ $codec == speex ]] && dec=(-c:a libspeex)
    spawn ffmpeg timeout 30 ffmpeg -nostdin -loglevel warning -y "${dec[@]}" \
        -i "rtmp://127.0.0.1:$port/live/tone-$codec" -t 4 -ar 8000 -ac 1 -c:a pcm_s16le \
        "$CDIR/ffmpeg-heard.wav"
    local ff=$LAST_PID
    sleep 0.5
    rtmp_phone phone "rtmp://127.0.0.1:$port/live" --no-sip --publish-name "tone-$codec" \
        --codec "$codec" --play "$CDIR/tone1000.wav" --loop --duration 7
    expect_line phone '^connected'
    expect_line phone "^publishing tone-$codec $codec"
    expect_line phone '^status NetStream.Publish.Start'
    wait "$ff" || fail "ffmpeg could not play live/tone-$codec: $(tail -1 "$CDIR/ffmpeg.err")"
    tone_ok ffmpeg "$CDIR/ffmpeg-heard.wav" 1000 440
}

# nginx_play CODEC PORT FFMPEG_CODEC_ARGS...: rtmp-phone --no-sip plays live/back-CODEC
# and records it; ffmpeg publishes a 440 Hz tone in CODEC there in real time; the phone's
# recording is 440 Hz.
nginx_play() {
    local codec=$1 port=$2
    shift 2
    nginx_start "$port"
    tone "$CDIR/tone440.wav" 440 6 8000
    spawn phone "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$port/live" --no-sip \
        --play-name "back-$codec" --record "$CDIR/phone.wav" --duration 8
    local phone=$LAST_PID
    sleep 1
    timeout 30 ffmpeg -nostdin -loglevel warning -re -i "$CDIR/tone440.wav" "$@" -ac 1 \
        -f flv "rtmp://127.0.0.1:$port/live/back-$codec" > "$CDIR/ffmpeg.out" 2>&1 < /dev/null ||
        fail "ffmpeg could not publish $codec: $(tail -1 "$CDIR/ffmpeg.out")"
    wait "$phone" || fail "rtmp-phone exited non-zero: $(tail -1 "$CDIR/phone.err")"
    expect_line phone '^status NetStream.Play.Start'
    expect_line phone '^recorded [0-9]'
    tone_ok phone "$CDIR/phone.wav" 440 1000
}

check_rtmpc_nginx_publish_speex() { nginx_publish speex 22000; }
check_rtmpc_nginx_publish_pcmu() { nginx_publish pcmu 22010; }
check_rtmpc_nginx_publish_pcma() { nginx_publish pcma 22020; }
check_rtmpc_nginx_play_speex() { nginx_play speex 22030 -c:a libspeex -ar 16000; }
check_rtmpc_nginx_play_pcmu() { nginx_play pcmu 22040 -c:a pcm_mulaw -ar 8000; }

# Through `switchboard gateway` + sipd: the rtmp-phone, as alice (authname/authpass/
# displayname), calls baresip bob (PCMU only, auto-answer, plays 440 Hz) offering the codec
# list CODECS; it prints ringing and accepted AUDIO, publishes its 1 kHz tone on `local` in
# that codec and records `remote`; bob hears 1 kHz and the phone records 440 Hz.
gateway_call() {
    local port=$1 codecs=$2 accepted=$3
    gateway_setup "$port"
    gateway_baresip bob "$port" 10 auto
    tone "$CDIR/tone1000.wav" 1000 3 16000
    rtmp_phone phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --codecs "$codecs" \
        --call "sip:bob@127.0.0.1:$port" --play "$CDIR/tone1000.wav" --loop \
        --record "$CDIR/phone.wav" --duration 5
    expect_line phone '^connected'
    expect_line phone '^ringing 18[03] '
    expect_line phone "^accepted $accepted"
    expect_line phone "^publishing local $accepted"
    tone_ok phone "$CDIR/phone.wav" 440 1000
    proxy_tone_ok bob 1 1000 440
}

# PCMU end to end (pass-through), and Speex WB from the phone with Flash 10's list (the
# gateway's line transcodes Speex <-> PCMU for bob).
check_rtmpc_gateway_call_pcmu() { gateway_call 22100 "pcmu dtmf" pcmu; }
check_rtmpc_gateway_call_speex() { gateway_call 22200 "wideband ulaw dtmf" speex; }

# A wrong authpass: the gateway's REGISTER gets 403/401, the connect is rejected with that
# reason, and rtmp-phone exits non-zero saying it.
check_rtmpc_gateway_refused() {
    local port=22300 rc=0
    gateway_setup "$port"
    timeout 40 "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass wrong --call "sip:bob@127.0.0.1:$port" \
        > "$CDIR/phone.out" 2> "$CDIR/phone.err" < /dev/null || rc=$?
    [[ $rc -ne 0 ]] || fail "rtmp-phone exited 0 after a wrong password"
    expect_line phone '^connect-rejected (401|403) '
    grep -qE 'NetConnection.Connect.Rejected: (401|403) ' "$CDIR/phone.err" ||
        fail "the exit reason does not give the SIP reason: $(tail -1 "$CDIR/phone.err")"
}

# Inbound with DTMF: `switchboard phone` bob (PCMU, plays 440 Hz) calls alice, whose phone is
# `rtmp-phone --answer` on the gateway: it prints `invited <bob> <alice>`, accepts, prints
# `accepted pcmu None`, sends `--dtmf 159#` with sendDTMF, which bob receives as RFC 4733
# events in order; bob hangs up after 6 s and the rtmp-phone prints `byed` and exits 0.
# Tones both ways.
check_rtmpc_gateway_answer_dtmf() {
    local port=22400
    gateway_setup "$port"
    tone "$CDIR/tone1000.wav" 1000 3 16000
    spawn alice "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --answer --wait 30 \
        --codecs "pcmu dtmf" --play "$CDIR/tone1000.wav" --loop --record "$CDIR/alice.wav" \
        --dtmf 159#
    local alice=$LAST_PID
    gateway_wait_line alice '^connected' 10
    timeout -k 2 40 "$SWITCHBOARD" phone --aor "bob@127.0.0.1:$port" --user bob \
        --password bobsecret --proxy "127.0.0.1:$port" --call "sip:alice@127.0.0.1:$port" \
        --codecs "pcmu dtmf" --play "$CDIR/tone440.wav" --record "$CDIR/bob.wav" --duration 6 \
        --rtp-ports "$((port + 80))-$((port + 99))" > "$CDIR/bob.out" 2> "$CDIR/bob.err" < /dev/null ||
        fail "bob's call to alice: $(tail -1 "$CDIR/bob.err")"
    wait "$alice" || fail "rtmp-phone alice exited non-zero: $(tail -1 "$CDIR/alice.err")"
    expect_line alice '^invited .*sip:bob@127.0.0.1.* .*sip:alice@127.0.0.1'
    expect_line alice '^accepted pcmu None'
    expect_line alice '^byed'
    local got
    got=$(sed -n 's/^dtmf \(.\)$/\1/p' "$CDIR/bob.out" | tr -d '\n')
    [[ $got == "159#" ]] || fail "bob received DTMF '$got', not '159#'"
    tone_ok alice "$CDIR/alice.wav" 440 1000
    tone_ok bob "$CDIR/bob.wav" 1000 440
}

# hold(bool): the rtmp-phone calls `switchboard phone` bob (auto-answer) and sends
# hold(true) after 1.5 s, hold(false) 1.5 s later: the gateway's re-INVITEs reach bob, who
# prints `holded true` then `holded false`; the call then ends normally.
check_rtmpc_gateway_hold() {
    local port=22600
    gateway_setup "$port"
    spawn bob "$SWITCHBOARD" phone --aor "bob@127.0.0.1:$port" --user bob \
        --password bobsecret --proxy "127.0.0.1:$port" --answer --wait 30 --codecs "pcmu dtmf" \
        --rtp-ports "$((port + 80))-$((port + 99))"
    local bob=$LAST_PID
    gateway_wait_line bob '^registered' 10
    rtmp_phone phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --codecs "pcmu dtmf" \
        --call "sip:bob@127.0.0.1:$port" --hold 1.5 --duration 5
    expect_line phone '^hold-sent true'
    expect_line phone '^hold-sent false'
    wait "$bob" || fail "bob exited non-zero: $(tail -1 "$CDIR/bob.err")"
    [[ $(grep '^holded' "$CDIR/bob.out" | tr '\n' ' ') == "holded true holded false " ]] ||
        fail "bob saw $(grep '^holded' "$CDIR/bob.out" | tr '\n' ' '), not 'holded true', 'holded false'"
    expect_line bob '^byed'
}

# Incoming calls refused and abandoned: alice is `rtmp-phone --reject "486 Busy Here"`; bob
# (`switchboard phone`) calls her and fails with `rejected 486 Busy Here`. Then carol's phone
# (no --reject/--answer: it only rings) is called by bob, who gives up while it rings
# (SIGTERM: his line CANCELs): the rtmp-phone prints `invited`, then `cancelled` with the
# same caller.
check_rtmpc_gateway_reject_cancel() {
    local port=22700 rc=0
    gateway_setup "$port"
    spawn alice "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --reject "486 Busy Here" --duration 30
    gateway_wait_line alice '^connected' 10
    timeout -k 2 30 "$SWITCHBOARD" phone --aor "bob@127.0.0.1:$port" --user bob \
        --password bobsecret --proxy "127.0.0.1:$port" --call "sip:alice@127.0.0.1:$port" \
        --rtp-ports "$((port + 80))-$((port + 89))" > "$CDIR/bob.out" 2> "$CDIR/bob.err" < /dev/null || rc=$?
    [[ $rc -ne 0 ]] || fail "bob's call to a rejecting alice succeeded"
    expect_line bob '^rejected 486 Busy Here'
    expect_line alice '^invited .*sip:bob@127.0.0.1'

    spawn carol "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/carol@127.0.0.1:$port" \
        --authname carol --authpass carolsecret --duration 30
    gateway_wait_line carol '^connected' 10
    spawn bob2 "$SWITCHBOARD" phone --aor "bob@127.0.0.1:$port" --user bob \
        --password bobsecret --proxy "127.0.0.1:$port" --call "sip:carol@127.0.0.1:$port" \
        --rtp-ports "$((port + 90))-$((port + 99))"
    local bob=$LAST_PID
    gateway_wait_line carol '^invited .*sip:bob@127.0.0.1' 10
    kill -TERM "$bob"
    gateway_wait_line carol '^cancelled .*sip:bob@127.0.0.1.* .*sip:carol@127.0.0.1' 10
}

# Two rtmp-phones call each other through the gateway (issue 7): bob (AMF3, simple
# handshake, VideoPhone's default codec list) invites alice (--answer, default list): both
# print `accepted speex None` (Speex passes through), each records the other's tone, bob
# hangs up after 6 s and alice gets `byed`.
check_rtmpc_gateway_two_phones() {
    local port=22500
    gateway_setup "$port"
    tone "$CDIR/tone1000.wav" 1000 3 16000
    tone "$CDIR/tone440.wav" 440 3 16000
    spawn alice "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --answer --wait 30 \
        --play "$CDIR/tone1000.wav" --loop --record "$CDIR/alice.wav"
    local alice=$LAST_PID
    gateway_wait_line alice '^connected' 10
    rtmp_phone bob "rtmp://127.0.0.1:$((port + 35))/sip/bob@127.0.0.1:$port" --amf3 \
        --simple-handshake --authname bob --authpass bobsecret --displayname Bob \
        --call "sip:alice@127.0.0.1:$port" --play "$CDIR/tone440.wav" --loop \
        --record "$CDIR/bob.wav" --record-flv "$CDIR/bob.flv" --duration 6
    wait "$alice" || fail "rtmp-phone alice exited non-zero: $(tail -1 "$CDIR/alice.err")"
    expect_line bob '^accepted speex None'
    expect_line alice '^accepted speex None'
    expect_line alice '^byed'
    tone_ok alice "$CDIR/alice.wav" 440 1000
    tone_ok bob "$CDIR/bob.wav" 1000 440
}

# gateway_bridge_log RTP_CODEC TO_FRONT TO_RTP: the all-in-one logged its call's media bridge
# with RTP_CODEC (rtpmap, e.g. speex/16000) on the SIP side, running TO_FRONT (RTP -> RTMP)
# and TO_RTP (RTMP -> RTP), each PassThrough or Transcode; prints the line.
gateway_bridge_log() {
    local line
    line=$(sed -E 's/\x1b\[[0-9;]*m//g' "$CDIR/srv.err" | grep -E ' media bridge ' | tail -1)
    [[ -n $line ]] || fail "the server logged no 'media bridge' line"
    [[ $line == *" rtp="[0-9]*" $1 "*" to_front=$2 to_rtp=$3"* ]] ||
        fail "the bridge is not $1 $2/$3: ${line#* media bridge }"
    echo "$line"
}

# pjsua_setup PORT: the all-in-one on PORT (gateway_aio) and 16 kHz tones of 1 kHz (the
# rtmp-phone's) and 440 Hz (pjsua's); fails if pjsua2 is not installed.
pjsua_setup() {
    "$PY" -c 'import pjsua2' 2> /dev/null || fail "pjsua2 not installed (pip install pjsua2-python)"
    gateway_aio "$1"
    tone "$CDIR/tone1000.wav" 1000 3 16000
    tone "$CDIR/tone440-16k.wav" 440 3 16000
}

# pjsua_bob PORT: sets PJSUA_BOB to the command line of pjsua2 bob
# (tests/interop/pjsua_peer.py, speex/16000 only) registered at 127.0.0.1:PORT with SIP on
# PORT+10, RTP from PORT+40, playing 440 Hz and recording bob.wav; add --answer or --call.
pjsua_bob() {
    PJSUA_BOB=("$PY" "$INTEROP_DIR/pjsua_peer.py" --server "127.0.0.1:$1" --user bob
        --password bobsecret --sip-port $(($1 + 10)) --rtp-port $(($1 + 40))
        --play "$CDIR/tone440-16k.wav" --record "$CDIR/bob.wav")
}

# pjsua_speex_ok PHONE: bob's stream ran speex/16000, the gateway's bridge passed it through
# both ways, and the rtmp-phone (recording PHONE.wav) and bob each recorded the other's tone.
pjsua_speex_ok() {
    expect_line bob '^media speex/16000 '
    gateway_bridge_log speex/16000 PassThrough PassThrough > "$CDIR/bridge.txt"
    tone_ok "$1" "$CDIR/$1.wav" 440 1000
    tone_ok bob "$CDIR/bob.wav" 1000 440
}

# pjsua2 (PJSIP's UA, only speex/16000 enabled, tests/interop/pjsua_peer.py) is bob on the
# all-in-one switchboard; the rtmp-phone alice (VideoPhone's codec list, rate=wideband)
# calls him: pjsua's stream runs speex/16000, the phone gets `accepted speex`, the
# gateway's bridge passes Speex through both ways (its log: no transcoding), and each side
# records the other's tone.
check_rtmpc_gateway_call_pjsua_speex() {
    local port=22800
    pjsua_setup "$port"
    pjsua_bob "$port"
    spawn bob timeout -k 2 45 "${PJSUA_BOB[@]}" --answer --wait 40 --seconds 20
    local bob=$LAST_PID
    gateway_wait_line bob '^registered 200' 10
    rtmp_phone phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --rate wideband \
        --call "sip:bob@127.0.0.1:$port" --play "$CDIR/tone1000.wav" --loop \
        --record "$CDIR/phone.wav" --duration 5
    wait "$bob" || fail "pjsua bob: $(grep -v '^ ' "$CDIR/bob.err" | tail -1)"
    expect_line phone '^accepted speex None'
    expect_line phone '^publishing local speex'
    expect_line bob '^disconnected 200 '
    pjsua_speex_ok phone
}

# The other way: pjsua2 bob (speex/16000 only) calls alice, whose phone is
# `rtmp-phone --answer` (VideoPhone's list, rate=wideband) on the all-in-one; she prints
# `invited` and `accepted speex None`, the bridge passes Speex through both ways, bob hangs
# up after 5 s and she prints `byed`; each side records the other's tone.
check_rtmpc_gateway_pjsua_calls_speex() {
    local port=22850
    pjsua_setup "$port"
    spawn alice "$SWITCHBOARD" rtmp-phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --rate wideband --answer \
        --wait 30 --play "$CDIR/tone1000.wav" --loop --record "$CDIR/alice.wav"
    local alice=$LAST_PID
    gateway_wait_line alice '^connected' 10
    pjsua_bob "$port"
    timeout -k 2 40 "${PJSUA_BOB[@]}" --call "sip:alice@127.0.0.1:$port" --seconds 5 --wait 30 \
        > "$CDIR/bob.out" 2> "$CDIR/bob.err" < /dev/null ||
        fail "pjsua bob: $(tail -1 "$CDIR/bob.out") $(grep -v '^ ' "$CDIR/bob.err" | tail -1)"
    wait "$alice" || fail "rtmp-phone alice exited non-zero: $(tail -1 "$CDIR/alice.err")"
    expect_line alice '^invited .*sip:bob@127.0.0.1.* .*sip:alice@127.0.0.1'
    expect_line alice '^accepted speex None'
    expect_line alice '^byed'
    pjsua_speex_ok alice
}

# baresip bob has only Opus (opus/48000/2); the rtmp-phone alice (Speex WB, codec list
# "wideband opus dtmf") calls him through the all-in-one switchboard: the gateway's line
# transcodes Speex <-> Opus both ways (its log says so), the phone gets `accepted speex`
# and publishes Speex, and each side records the other's tone.
check_rtmpc_gateway_call_opus() {
    local port=22900
    phone_needs_baresip
    gateway_aio "$port"
    phone_stereo48k "$CDIR/tone440-48k.wav" 440
    gateway_baresip bob "$port" 10 auto bobsecret opus/48000/2 "$CDIR/tone440-48k.wav"
    tone "$CDIR/tone1000.wav" 1000 3 16000
    rtmp_phone phone "rtmp://127.0.0.1:$((port + 35))/sip/alice@127.0.0.1:$port" \
        --authname alice --authpass secret --displayname Alice --codecs "wideband opus dtmf" \
        --call "sip:bob@127.0.0.1:$port" --play "$CDIR/tone1000.wav" --loop \
        --record "$CDIR/phone.wav" --duration 5
    expect_line phone '^accepted speex None'
    expect_line phone '^publishing local speex'
    gateway_bridge_log opus/48000/2 Transcode Transcode > "$CDIR/bridge.txt"
    tone_ok phone "$CDIR/phone.wav" 440 1000
    proxy_tone_ok bob 1 1000 440
}

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    rtmpc_nginx_publish_speex:60
    rtmpc_nginx_publish_pcmu:60
    rtmpc_nginx_publish_pcma:60
    rtmpc_nginx_play_speex:60
    rtmpc_nginx_play_pcmu:60
    rtmpc_gateway_call_pcmu:90
    rtmpc_gateway_call_speex:90
    rtmpc_gateway_refused:60
    rtmpc_gateway_answer_dtmf:90
    rtmpc_gateway_two_phones:90
    rtmpc_gateway_hold:90
    rtmpc_gateway_reject_cancel:90
    rtmpc_gateway_call_pjsua_speex:60
    rtmpc_gateway_pjsua_calls_speex:60
    rtmpc_gateway_call_opus:60
)

interop_main "$HERE/rtmp_client.sh" "$@"
