#!/usr/bin/env bash
# Interop checks for the gateway's H.264 translation (`media::video::h264`, RFC 6184)
# against ffmpeg, through the `h264_rtp` example of switchboard-media: an FLV that ffmpeg
# encoded (libx264 Baseline) goes out as RTP and ffmpeg's RTP demuxer must decode every
# frame; ffmpeg's RTP packetizer (small packets: FU-A) comes in and the FLV we rebuild
# must decode, frame for frame; with packets lost, what we rebuild must still decode without
# a single error (frames are dropped until the next IDR) and key frames are requested.
#
# usage: tests/interop/video.sh [CHECK...]   (default: every check; names listed by --list)
# env:   H264_RTP      the example (default $CARGO_TARGET_DIR/debug/examples/h264_rtp,
#                      built if missing)
#        INTEROP_WORK  where each check keeps its logs (default: tests/interop/out)
# All traffic stays on 127.0.0.1, ports 23700-23799.
# Needs: ffmpeg with libx264, iproute2 (ss).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=lib.sh
source "$HERE/lib.sh"

ALL_CHECKS=(
    video_h264_to_ffmpeg:60
    video_h264_from_ffmpeg:60
    video_h264_loss_from_ffmpeg:60
    video_h264_sprop_from_ffmpeg:60
)

# source_flv: 3 s of a test pattern, 25 fps, a key frame each second; prints its frame count.
source_flv() {
    ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 3 -c:v libx264 \
        -profile:v baseline -g 25 -bf 0 -pix_fmt yuv420p "$CDIR/in.flv" ||
        fail "ffmpeg could not encode the source"
    frames "$CDIR/in.flv"
}

# frames FILE: the video frames ffprobe decodes from FILE.
frames() {
    ffprobe -v error -count_frames -select_streams v -show_entries stream=nb_read_frames \
        -of csv=p=0 "$1" 2> "$CDIR/ffprobe.err" | tr -d '[:space:]'
}

# decodes_cleanly FILE: ffmpeg decodes FILE without an error message.
decodes_cleanly() {
    ffmpeg -v error -i "$1" -f null - > "$CDIR/decode.err" 2>&1
    [[ ! -s $CDIR/decode.err ]] || fail "decoding $(basename "$1"): $(head -2 "$CDIR/decode.err")"
}

# wait_bound PORT: until something has UDP PORT on 127.0.0.1 (10 s).
wait_bound() {
    local end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        ss -Hunl "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    fail "nothing bound udp/$1 after 10 s"
}

check_video_h264_to_ffmpeg() {
    local want got port=23702 ffmpeg_pid
    want=$(source_flv)
    cat > "$CDIR/in.sdp" << SDP
v=0
o=- 0 0 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=video $port RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1
SDP
    # No sprop-parameter-sets: ffmpeg learns SPS and PPS from our packets alone.
    spawn ffmpeg ffmpeg -v warning -y -analyzeduration 1000000 -probesize 100000 \
        -protocol_whitelist file,udp,rtp -i "$CDIR/in.sdp" -c copy -f h264 "$CDIR/out.h264"
    ffmpeg_pid=$LAST_PID
    wait_bound "$port"
    "$H264_RTP" send "$CDIR/in.flv" "127.0.0.1:$port" > "$CDIR/send.out" ||
        fail "h264_rtp send failed: $(cat "$CDIR/send.out")"
    grep -Eq 'fu-a [1-9]' "$CDIR/send.out" || fail "no FU-A packet sent: $(cat "$CDIR/send.out")"
    sleep 1
    kill -INT "$ffmpeg_pid"
    wait "$ffmpeg_pid" || true
    got=$(frames "$CDIR/out.h264")
    [[ $got == "$want" ]] || fail "ffmpeg decoded ${got:-no} frames of $want ($(cat "$CDIR/send.out"))"
    decodes_cleanly "$CDIR/out.h264"
    note "ffmpeg decoded $got/$want frames; sent: $(cat "$CDIR/send.out")"
}

# from_ffmpeg PORT [DROP [FMTP]]: ffmpeg sends in.flv as RTP to `h264_rtp recv`, which
# writes back.flv (losing every DROP-th packet). Without FMTP, ffmpeg puts SPS/PPS in-band
# ahead of each IDR, as SIP video phones do; with it, they are only in the SDP's FMTP.
from_ffmpeg() {
    local recv_pid bsf=(-bsf:v h264_mp4toannexb)
    [[ -z ${3:-} ]] || bsf=()
    spawn recv "$H264_RTP" recv "$1" "$CDIR/back.flv" 6 "${2:-0}" ${3:+"$3"}
    recv_pid=$LAST_PID
    wait_bound "$1"
    # 600-byte packets make ffmpeg fragment (FU-A).
    ffmpeg -v error -re -i "$CDIR/in.flv" -an -c:v copy "${bsf[@]}" \
        -f rtp -payload_type 96 -pkt_size 600 "rtp://127.0.0.1:$1" \
        > "$CDIR/ffmpeg.sdp" 2> "$CDIR/ffmpeg.err" || fail "ffmpeg could not send: $(head -2 "$CDIR/ffmpeg.err")"
    wait "$recv_pid" || fail "h264_rtp recv failed: $(cat "$CDIR/recv.err")"
}

check_video_h264_from_ffmpeg() {
    local want got
    want=$(source_flv)
    from_ffmpeg 23712
    grep -Eq 'sequence-headers [1-9].* dropped 0 ' "$CDIR/recv.out" ||
        fail "unexpected receive counts: $(cat "$CDIR/recv.out")"
    got=$(frames "$CDIR/back.flv")
    [[ $got == "$want" ]] || fail "the rebuilt FLV decodes to ${got:-no} frames of $want ($(cat "$CDIR/recv.out"))"
    decodes_cleanly "$CDIR/back.flv"
    note "rebuilt FLV decodes to $got/$want frames; received: $(cat "$CDIR/recv.out")"
}

check_video_h264_loss_from_ffmpeg() {
    local want got written
    want=$(source_flv)
    from_ffmpeg 23722 40
    grep -Eq 'key-frame-requests [1-9]' "$CDIR/recv.out" ||
        fail "no key-frame request after loss: $(cat "$CDIR/recv.out")"
    # Every frame we forwarded decodes: none refers to a picture that was lost.
    written=$(sed -nE 's/^frames ([0-9]+) .*/\1/p' "$CDIR/recv.out")
    got=$(frames "$CDIR/back.flv")
    ((got > 0 && got < want)) || fail "after loss the FLV decodes to ${got:-no} frames of $want"
    [[ $got == "$written" ]] || fail "$written frames forwarded after loss but only $got decode"
    decodes_cleanly "$CDIR/back.flv"
    note "with 1 packet in 40 lost: $got/$want frames, no decoding error; $(cat "$CDIR/recv.out")"
}

check_video_h264_sprop_from_ffmpeg() {
    local want got fmtp
    want=$(source_flv)
    # The SDP ffmpeg writes for this stream: its a=fmtp carries sprop-parameter-sets.
    ffmpeg -v error -i "$CDIR/in.flv" -an -c:v copy -frames:v 1 -f rtp -payload_type 96 \
        -sdp_file "$CDIR/ffmpeg-first.sdp" "rtp://127.0.0.1:23739" > /dev/null 2>&1 ||
        fail "ffmpeg wrote no SDP"
    fmtp=$(sed -nE 's/^a=fmtp:96 (.*)$/\1/p' "$CDIR/ffmpeg-first.sdp" | tr -d '\r')
    [[ $fmtp == *sprop-parameter-sets=* ]] || fail "no sprop-parameter-sets in ffmpeg's SDP: $fmtp"
    from_ffmpeg 23732 0 "$fmtp"
    got=$(frames "$CDIR/back.flv")
    [[ $got == "$want" ]] || fail "with SPS/PPS from the SDP only, ${got:-no} frames of $want decode ($(cat "$CDIR/recv.out"))"
    decodes_cleanly "$CDIR/back.flv"
    note "SPS/PPS only in the SDP: $got/$want frames; $(cat "$CDIR/recv.out")"
}

interop_setup() {
    local root
    root=$(cd "$INTEROP_DIR/../.." && pwd)
    if [[ -z ${H264_RTP:-} ]]; then
        H264_RTP=${CARGO_TARGET_DIR:-$root/target}/debug/examples/h264_rtp
        if [[ ! -x $H264_RTP ]]; then
            (cd "$root" && cargo build -p switchboard-media --example h264_rtp) >&2 || return 1
        fi
    fi
    export H264_RTP
}

interop_main "$HERE/video.sh" "$@"
