#!/usr/bin/env bash
# Interop checks for `switchboard rtmp`, the RTMP media server (the original `rtmp.py`), and
# for the application trait its `sip` gateway is built on: ffmpeg, rtmpdump and
# python-librtmp publish and play; what comes out must carry the published tone (or
# decode as H.264), recordings must play back, refusals must reach the client.
#
# usage: tests/interop/rtmp.sh [CHECK...]    (default: every check; names listed by --list)
# env:   SWITCHBOARD   the binary (default $CARGO_TARGET_DIR/debug/switchboard, built if missing)
#        RTMP_ECHO     the rpc_echo example server (default
#                      $CARGO_TARGET_DIR/debug/examples/rpc_echo, built if missing)
#        INTEROP_WORK  where each check keeps its logs (default: tests/interop/out)
# All traffic stays on 127.0.0.1, ports 23500-23599.
# Needs: ffmpeg (with libspeex, libx264, aac), rtmpdump, python-librtmp (librtmp-dev), python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"

# name:time limit in seconds (each check runs under `timeout`).
ALL_CHECKS=(
    rtmp_audio_codecs:90
    rtmp_h264_aac_late_join:60
    rtmp_bad_name:60
    rtmp_record_playback:60
    rtmp_stream_not_found:30
    rtmp_librtmp_rpc:60
)

TONE="$INTEROP_DIR/proxy_tonecheck.py"

# rtmp_server LABEL PORT: `switchboard -d rtmp` on PORT with root $CDIR/root; waits for it.
# (NO_COLOR: plain log lines to grep.)
rtmp_server() {
    spawn "$1" env NO_COLOR=1 "$SWITCHBOARD" -d rtmp -p "$2" -r "$CDIR/root"
    wait_port "$2" "$LAST_PID" "$1"
}

# rtmp_wait_log LABEL PATTERN COUNT: until LABEL.err has COUNT lines matching PATTERN (10 s).
rtmp_wait_log() {
    local end=$((SECONDS + 10)) n
    while ((SECONDS < end)); do
        n=$(grep -c -- "$2" "$CDIR/$1.err" 2> /dev/null || true)
        ((n >= $3)) && return 0
        sleep 0.1
    done
    fail "$1: fewer than $3 log lines with '$2' after 10 s"
}

# rtmp_codec_args CODEC: ffmpeg encoder arguments (Speex only exists at 16 kHz in FLV).
rtmp_codec_args() {
    case $1 in
        speex) echo "-c:a libspeex -ar 16000" ;;
        pcmu) echo "-c:a pcm_mulaw -ar 8000" ;;
        pcma) echo "-c:a pcm_alaw -ar 8000" ;;
    esac
}

# rtmp_rate CODEC: the sample rate of the tone to encode.
rtmp_rate() { [[ $1 == speex ]] && echo 16000 || echo 8000; }

# rtmp_decoder CODEC: ffmpeg's native Speex decoder drifts off a pure tone after a few
# seconds where libspeex does not; decode Speex with libspeex.
rtmp_decoder() { [[ $1 == speex ]] && echo "-c:a libspeex" || true; }

# rtmp_tone LABEL FILE HZ OTHER_HZ MIN_WINDOWS: FILE (any format ffmpeg reads) carries HZ.
rtmp_tone() {
    local label=$1 file=$2 wav="$CDIR/$1.check.wav"
    shift 2
    [[ -s $file ]] || fail "$label: nothing received ($file is empty or missing)"
    if [[ $file != *.wav ]]; then
        ffmpeg -nostdin -hide_banner -loglevel error -y ${RTMP_DECODER:-} -i "$file" \
            -ar 8000 -ac 1 "$wav" 2> "$CDIR/$label.decode.err" ||
            fail "$label: ffmpeg cannot decode $file: $(tail -1 "$CDIR/$label.decode.err")"
        file=$wav
    fi
    "$PY" "$TONE" check "$file" "$@" > "$CDIR/$label.tone.txt" 2>&1 ||
        fail "$label: received audio is not $1 Hz: $(tail -1 "$CDIR/$label.tone.txt")"
}

needs_tools() {
    command -v ffmpeg > /dev/null || fail "ffmpeg not installed (apt-get install ffmpeg)"
    command -v rtmpdump > /dev/null || fail "rtmpdump not installed (apt-get install rtmpdump)"
}

# 1. Speex 16 kHz, PCMU and PCMA: for each, an ffmpeg player (live) and an rtmpdump player
#    (-v) wait on live/tone_CODEC, then ffmpeg publishes a 1 kHz tone with extra connect
#    arguments (-rtmp_conn); both players' audio must be the tone. The players join before
#    the publisher (NetStream.Play.PublishNotify path): a Speex decoder that starts
#    mid-stream on a pure tone diverges, whatever the server does.
check_rtmp_audio_codecs() {
    needs_tools
    local port=23500 url c rds=()
    url="rtmp://127.0.0.1:$port/live"
    rtmp_server srv $port
    for c in speex pcmu pcma; do
        # shellcheck disable=SC2046
        spawn "ff_$c" timeout 30 ffmpeg -nostdin -hide_banner -loglevel error $(rtmp_decoder $c) \
            -rtmp_live live -i "$url/tone_$c" -t 4 -ar 8000 -ac 1 -y "$CDIR/ff_$c.wav"
        spawn "rd_$c" timeout -s INT 14 rtmpdump -q -v -r "$url/tone_$c" -o "$CDIR/rd_$c.flv"
        rds+=("$LAST_PID")
    done
    rtmp_wait_log srv 'INFO.* play ' 6
    local pubs=()
    for c in speex pcmu pcma; do
        # shellcheck disable=SC2046
        spawn "pub_$c" timeout 30 ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
            -i "sine=frequency=1000:sample_rate=$(rtmp_rate $c):duration=6" $(rtmp_codec_args $c) \
            -ac 1 -f flv -rtmp_conn "S:alice S:secret S:Alice" "$url/tone_$c"
        pubs+=("$LAST_PID")
    done
    for pid in "${pubs[@]}"; do
        wait "$pid" || fail "an ffmpeg publisher failed: $(cat "$CDIR"/pub_*.err | tail -2)"
    done
    [[ $(grep -c 'extra_args=3' "$CDIR/srv.err") -ge 3 ]] ||
        fail "the server did not see the three extra connect arguments (-rtmp_conn)"
    sleep 1
    for c in speex pcmu pcma; do
        rtmp_tone "ffmpeg_$c" "$CDIR/ff_$c.wav" 1000 440 3
    done
    # rtmpdump keeps playing a live stream: stop it (SIGINT, which `timeout` passes on,
    # makes it close its file properly).
    for pid in "${rds[@]}"; do
        kill -INT "$pid" 2> /dev/null || true
    done
    for pid in "${rds[@]}"; do
        wait "$pid" 2> /dev/null || true
    done
    for c in speex pcmu pcma; do
        RTMP_DECODER=$(rtmp_decoder $c) rtmp_tone "rtmpdump_$c" "$CDIR/rd_$c.flv" 1000 440 4
    done
}

# 2. ffmpeg publishes H.264 (libx264, 2 s GOP) + AAC (440 Hz); a player that joins 4 s in
#    decodes video at once (it got the AVC sequence header and starts at a key frame: no
#    decoder complaints) and hears the tone (AAC header).
check_rtmp_h264_aac_late_join() {
    needs_tools
    local port=23510 url
    url="rtmp://127.0.0.1:$port/live/av"
    rtmp_server srv $port
    spawn pub timeout 40 ffmpeg -nostdin -hide_banner -loglevel error -re \
        -f lavfi -i "testsrc=size=320x240:rate=25:duration=14" \
        -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=14" \
        -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -c:a aac -f flv "$url"
    rtmp_wait_log srv 'INFO.* publish ' 1
    sleep 4
    timeout 20 ffmpeg -nostdin -hide_banner -loglevel error -i "$url" \
        -map 0:v -t 4 -f framecrc "$CDIR/late.crc" \
        -map 0:a -t 4 -ar 8000 -ac 1 -y "$CDIR/late.wav" 2> "$CDIR/late.err" ||
        fail "late ffmpeg player failed: $(tail -1 "$CDIR/late.err")"
    local frames
    frames=$(grep -vc '^#' "$CDIR/late.crc" || true)
    # Video starts at the next key frame (at most one 2 s GOP away): >= 2 s of 25 fps.
    ((frames >= 45)) || fail "late joiner decoded $frames video frames in 4 s (want >= 45)"
    if grep -qiE 'non-existing PPS|no frame|decode_slice|error while decoding' "$CDIR/late.err"; then
        fail "late joiner's H.264 decoder complained: $(grep -iE 'PPS|frame|slice|error' "$CDIR/late.err" | head -1)"
    fi
    rtmp_tone late_aac "$CDIR/late.wav" 440 1000 3
}

# 3. A second publisher of a name in use gets NetStream.Publish.BadName (ffmpeg reports the
#    description and gives up); the first publisher's stream still reaches a player.
check_rtmp_bad_name() {
    needs_tools
    local port=23520 url
    url="rtmp://127.0.0.1:$port/live/dup"
    rtmp_server srv $port
    spawn pub1 timeout 40 ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
        -i "sine=frequency=1000:sample_rate=8000:duration=12" -c:a pcm_mulaw -ar 8000 -ac 1 \
        -f flv "$url"
    rtmp_wait_log srv 'INFO.* publish ' 1
    if timeout 15 ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
        -i "sine=frequency=440:sample_rate=8000:duration=5" -c:a pcm_mulaw -ar 8000 -ac 1 \
        -f flv "$url" > "$CDIR/pub2.out" 2> "$CDIR/pub2.err"; then
        fail "the second publisher of live/dup was not refused"
    fi
    grep -q 'already in use' "$CDIR/pub2.err" ||
        fail "ffmpeg did not report the refusal: $(tail -1 "$CDIR/pub2.err")"
    grep -q 'publish refused: NetStream.Publish.BadName' "$CDIR/srv.err" ||
        fail "no NetStream.Publish.BadName in the server log"
    timeout 15 ffmpeg -nostdin -hide_banner -loglevel error -i "$url" -t 3 -ar 8000 -ac 1 \
        -y "$CDIR/play.wav" 2> "$CDIR/play.err" || fail "player failed: $(tail -1 "$CDIR/play.err")"
    rtmp_tone player "$CDIR/play.wav" 1000 440 3
}

# 4. python-librtmp publishes PCMA (1 kHz, 3 s) with publish(name, "record"), then again
#    with "append": ROOT/rec.flv holds both (about 6 s). ffmpeg and rtmpdump play it from
#    the root: the tone, in real time, ending with NetStream.Play.Stop.
check_rtmp_record_playback() {
    needs_tools
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    local port=23530 url kind dur t0 elapsed_ms
    url="rtmp://127.0.0.1:$port/live"
    rtmp_server srv $port
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi \
        -i "sine=frequency=1000:sample_rate=8000:duration=3" -c:a pcm_alaw -ar 8000 -ac 1 \
        -f flv "$CDIR/alaw.flv" 2> "$CDIR/mk.err" || fail "ffmpeg: $(tail -1 "$CDIR/mk.err")"
    for kind in record append; do
        timeout 20 "$PY" "$INTEROP_DIR/rtmp_librtmp.py" publish "$url" rec "$kind" \
            "$CDIR/alaw.flv" > "$CDIR/pub_$kind.out" 2> "$CDIR/pub_$kind.err" ||
            fail "python-librtmp publish $kind: $(tail -1 "$CDIR/pub_$kind.err") $(head -1 "$CDIR/pub_$kind.out")"
        grep -q '^status NetStream.Publish.Start' "$CDIR/pub_$kind.out" ||
            fail "publish $kind: $(head -1 "$CDIR/pub_$kind.out")"
    done
    [[ -s $CDIR/root/rec.flv ]] || fail "no recording at ROOT/rec.flv"
    sleep 0.5
    t0=$(date +%s%N)
    timeout 20 ffmpeg -nostdin -hide_banner -loglevel error -i "$url/rec" -ar 8000 -ac 1 \
        -y "$CDIR/play.wav" 2> "$CDIR/play.err" || fail "ffmpeg playback: $(tail -1 "$CDIR/play.err")"
    elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
    ((elapsed_ms >= 4500)) || fail "a 6 s file played in $elapsed_ms ms: not paced in real time"
    # Both parts: 6 s (record 3 s + append 3 s) at 8 kHz, 16-bit.
    dur=$(( ($(stat -c %s "$CDIR/play.wav") - 44) / 16 ))
    ((dur >= 5800 && dur <= 6500)) || fail "the recording plays for $dur ms, want 6000 (record + append)"
    rtmp_tone ffmpeg_file "$CDIR/play.wav" 1000 440 5
    # rtmpdump without -v asks for the recording (start 0) and stops at Play.Stop.
    timeout 20 rtmpdump -q -r "$url/rec" -o "$CDIR/rd.flv" > "$CDIR/rd.out" 2>&1 || true
    rtmp_tone rtmpdump_file "$CDIR/rd.flv" 1000 440 5
}

# 5. Playing a file that does not exist: NetStream.Play.StreamNotFound for ffmpeg (recorded
#    only) and rtmpdump (start 0), and a log line.
check_rtmp_stream_not_found() {
    needs_tools
    local port=23540 url
    url="rtmp://127.0.0.1:$port/live/missing"
    rtmp_server srv $port
    if timeout 10 ffmpeg -nostdin -hide_banner -loglevel error -rtmp_live recorded -i "$url" \
        -f null - > /dev/null 2> "$CDIR/ff.err"; then
        fail "ffmpeg played a stream that does not exist"
    fi
    grep -q 'No such stream: missing' "$CDIR/ff.err" ||
        fail "ffmpeg did not get the refusal: $(tail -1 "$CDIR/ff.err")"
    timeout 10 rtmpdump -r "$url" -o "$CDIR/rd.flv" > "$CDIR/rd.out" 2>&1 || true
    grep -q 'NetStream.Play.StreamNotFound' "$CDIR/rd.out" ||
        fail "rtmpdump did not get NetStream.Play.StreamNotFound: $(tail -1 "$CDIR/rd.out")"
    [[ $(grep -c 'play refused: NetStream.Play.StreamNotFound' "$CDIR/srv.err") -ge 2 ]] ||
        fail "no StreamNotFound log lines"
}

# 6. An application on the trait (the rpc_echo example): python-librtmp connects with extra
#    arguments (accepted asynchronously), calls echo() and invite() and gets their
#    _results, receives the server-initiated invited(from, to) and answers it; the
#    application sees the arguments and the answer.
check_rtmp_librtmp_rpc() {
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    local port=23550
    spawn echo "$RTMP_ECHO" "127.0.0.1:$port"
    wait_port $port "$LAST_PID" echo
    timeout 20 "$PY" "$INTEROP_DIR/rtmp_librtmp.py" rpc "rtmp://127.0.0.1:$port/rpc" \
        > "$CDIR/client.out" 2> "$CDIR/client.err" ||
        fail "python-librtmp rpc: $(tail -1 "$CDIR/client.err")"
    grep -qx 'echo a' "$CDIR/client.out" || fail "echo(): $(grep echo "$CDIR/client.out")"
    grep -qx 'invite calling sip:bob@example.com' "$CDIR/client.out" ||
        fail "invite(): $(grep invite "$CDIR/client.out")"
    grep -qx 'invited <sip:rpc@test> sip:bob@example.com' "$CDIR/client.out" ||
        fail "no server-initiated invited(from, to) reached the client"
    sleep 0.5
    grep -qF 'connect app=rpc args=["alice", "secret", "Alice Example"]' "$CDIR/echo.out" ||
        fail "the application did not see the connect arguments: $(grep connect "$CDIR/echo.out")"
    grep -qF 'invited answered _result [String("ringing")]' "$CDIR/echo.out" ||
        fail "the client's answer to invited did not reach the application"
}

interop_setup() {
    local root
    root=$(cd "$INTEROP_DIR/../.." && pwd)
    if [[ -z ${RTMP_ECHO:-} ]]; then
        RTMP_ECHO=${CARGO_TARGET_DIR:-$root/target}/debug/examples/rpc_echo
        if [[ ! -x $RTMP_ECHO ]]; then
            (cd "$root" && cargo build -p switchboard-front-rtmp --example rpc_echo) >&2 || return 1
        fi
    fi
    export RTMP_ECHO
}

interop_main "$HERE/rtmp.sh" "$@"
