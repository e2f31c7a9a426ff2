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
    proxy_fg timeout 40 "$PY" "$INTEROP_DIR/gateway_librtmp.py" call $((port + 35)) \
        "alice@127.0.0.1:$port" alice secret "sip:bob@127.0.0.1:$port" \
        "$CDIR/speex1000.flv" 5 wideband ulaw dtmf > "$CDIR/client.out" 2> "$CDIR/client.err" ||
        fail "python-librtmp: $(tail -1 "$CDIR/client.err")"
    grep -q '^callback accepted speex' "$CDIR/client.out" ||
        fail "no accepted('speex', ...) callback: $(grep callback "$CDIR/client.out" | tr '\n' ' ')"
    proxy_tone_ok bob 1 1000 440
}

# gateway_setup PORT: sipd with alice/bob/carol, the test tones, a Speex FLV, and the
# gateway (RTMP on PORT+35) whose lines register there.
gateway_setup() {
    local port=$1
    phone_needs_baresip
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret carol=carolsecret
    proxy_server "$port" --users "$CDIR/users.toml"
    proxy_tones
    gateway_speex_flv "$CDIR/speex1000.flv" 1000 20
    gateway_start gw $((port + 35)) "$port" $((port + 60))
}

# gateway_aio PORT: as gateway_setup, but the all-in-one `switchboard --config` (SIP server
# and gateway in one process, the same users, no web listener): SIP UDP on PORT, RTMP on
# PORT+35, the gateway's RTP on PORT+60..PORT+79; its log in srv.err.
gateway_aio() {
    local port=$1
    cat > "$CDIR/switchboard.toml" << EOF
data = "data"
[sip]
udp = ["127.0.0.1:$port"]
tcp = []
[web]
listen = []
[gateway]
rtp_ports = "$((port + 60))-$((port + 79))"
[rtmp]
listen = "127.0.0.1:$((port + 35))"
[users]
alice = "secret"
bob = "bobsecret"
carol = "carolsecret"
EOF
    spawn srv "$SWITCHBOARD" --config "$CDIR/switchboard.toml"
    local srv=$LAST_PID
    wait_udp "$port" "$srv" srv
    wait_port $((port + 35)) "$srv" srv
    proxy_tones
}

# gateway_baresip NAME PORT OFFSET ANSWERMODE [PASSWORD [CODEC WAV]]: baresip NAME (only
# CODEC as baresip writes it, default PCMU; plays WAV, default 440 Hz at 8 kHz) registered at
# 127.0.0.1:PORT (password NAMEsecret by default); SIP on PORT+OFFSET, ctrl on
# PORT+OFFSET+20, RTP from PORT+OFFSET+30.
gateway_baresip() {
    local name=$1 port=$2 off=$3 pass=${5:-${1}secret} codec=${6:-PCMU} wav=${7:-$CDIR/tone440.wav}
    phone_mk_baresip "$name" $((port + off)) $((port + off + 20)) $((port + off + 30)) "$wav" \
        "<sip:$name@127.0.0.1:$port>;auth_pass=$pass;answermode=$4;audio_codecs=$codec;regint=600"
    proxy_baresip_start "$name"
    proxy_baresip_registered "$name" $((port + off + 20))
}

# gateway_client LABEL MODE ARGS...: the python-librtmp phone as alice, in the background.
gateway_client() {
    local label=$1 mode=$2 port=$3
    shift 3
    spawn "$label" "$PY" "$INTEROP_DIR/gateway_librtmp.py" "$mode" $((port + 35)) \
        "alice@127.0.0.1:$port" alice secret "$@"
}

# gateway_wait_line LABEL PATTERN SECONDS: wait until the client LABEL printed PATTERN.
gateway_wait_line() {
    local end=$((SECONDS + $3))
    until grep -q "$2" "$CDIR/$1.out" 2> /dev/null; do
        ((SECONDS < end)) || fail "client $1: no '$2' within $3 s ($(tail -1 "$CDIR/$1.err" 2> /dev/null))"
        sleep 0.1
    done
}

# gateway_ring LABEL CTRL URI CLIENT: baresip (ctrl port CTRL) dials URI until the client
# CLIENT printed `callback invited` (its line may still be registering: the call then ends
# with sipd's 480 at once, and it is tried again, 10 times at most). The last attempt's
# close reason is in LABEL.out.
gateway_ring() {
    local n
    for n in $(seq 1 10); do
        proxy_fg timeout 25 "$PY" "$INTEROP_DIR/phone_baresip.py" closed "$2" 20 "$3" \
            > "$CDIR/$1.out" 2> "$CDIR/$1.err" || fail "$1: $(tr '\n' ' ' < "$CDIR/$1.err")"
        grep -q '^callback invited' "$CDIR/$4.out" && return 0
        sleep 0.5
    done
    fail "$1: the client $4 was never invited ($(tail -1 "$CDIR/$1.out"))"
}

# gateway_dial LABEL CTRL URI CLIENT SECONDS: baresip (ctrl CTRL) calls URI, the call must be
# established, stay up SECONDS and be hung up by baresip; retried (10 times at most) while
# the client CLIENT has not been invited yet (its line still registering).
gateway_dial() {
    local n
    for n in $(seq 1 10); do
        if proxy_fg timeout 30 "$PY" "$INTEROP_DIR/phone_baresip.py" dial "$2" "$3" "$5" \
            > "$CDIR/$1.out" 2> "$CDIR/$1.err"; then
            return 0
        fi
        grep -q '^callback invited' "$CDIR/$4.out" &&
            fail "$1: $(tr '\n' ' ' < "$CDIR/$1.err")"
        sleep 0.5
    done
    fail "$1: the client $4 was never invited ($(tr '\n' ' ' < "$CDIR/$1.err"))"
}

# gateway_watch LABEL CTRL SECONDS: in the background, wait for baresip's next call to be
# closed (its ctrl socket is connected before this returns); gateway_watched LABEL waits.
gateway_watch() {
    spawn "$1" timeout $(($3 + 5)) "$PY" "$INTEROP_DIR/phone_baresip.py" closed "$2" "$3"
    eval "WATCH_$1=$LAST_PID"
    sleep 0.5
}
gateway_watched() {
    local pid
    eval "pid=\$WATCH_$1"
    wait "$pid" || fail "$1: $(tr '\n' ' ' < "$CDIR/$1.err")"
}

# gateway_closed LABEL CTRL SECONDS [URI]: baresip (ctrl port CTRL) sees its call closed
# within SECONDS (after dialing URI, if given); the reason is in LABEL.out.
gateway_closed() {
    proxy_fg timeout $(($3 + 5)) "$PY" "$INTEROP_DIR/phone_baresip.py" closed "$2" "$3" ${4:+"$4"} \
        > "$CDIR/$1.out" 2> "$CDIR/$1.err" || fail "$1: $(tr '\n' ' ' < "$CDIR/$1.err")"
}

# 2. baresip bob calls alice, whose phone is the python-librtmp client on the gateway: the
#    client gets invited(from, to), accepts with (wideband, ulaw, dtmf), publishes Speex;
#    bob hears 1 kHz, hangs up after 5 s, and the client gets byed().
check_gateway_librtmp_inbound() {
    local port=21100
    gateway_setup $port
    gateway_baresip bob $port 10 auto
    gateway_client client answer $port "$CDIR/speex1000.flv" 8 wideband ulaw dtmf
    local client=$LAST_PID
    gateway_wait_line client '^connected' 10
    gateway_dial bob-ctrl $((port + 30)) "sip:alice@127.0.0.1:$port" client 5
    local rc=0
    wait "$client" || rc=$?
    [[ $rc -eq 0 ]] || fail "client: $(tail -1 "$CDIR/client.err")"
    grep -q '^callback invited .*bob@127.0.0.1' "$CDIR/client.out" ||
        fail "no invited(bob, alice) callback: $(grep callback "$CDIR/client.out" | tr '\n' ' ')"
    grep -q '^callback byed' "$CDIR/client.out" || fail "no byed() after bob hung up"
    proxy_tone_ok bob 1 1000 440
}

# 3. A client that vanishes leaves nothing behind (seed-spec §7.22 fixed): dropped while
#    its outbound call rings (bob, manual answer) -> bob's call is cancelled; dropped in a
#    call (carol, auto answer) -> carol gets BYE; dropped while invited by bob -> bob's
#    call ends; and afterwards alice is no longer registered: bob's call to her fails.
check_gateway_disconnect() {
    local port=21200
    gateway_setup $port
    gateway_baresip bob $port 10 manual
    gateway_baresip carol $port 12 auto

    gateway_watch bob_ringing $((port + 30)) 20
    gateway_client ringing drop $port ringing "sip:bob@127.0.0.1:$port"
    gateway_watched bob_ringing
    gateway_wait_line ringing '^dropping' 5

    gateway_watch carol_call $((port + 32)) 20
    gateway_client incall drop $port call "sip:carol@127.0.0.1:$port"
    gateway_watched carol_call
    gateway_wait_line incall '^dropping' 5

    gateway_client invited drop $port incoming
    gateway_wait_line invited '^connected' 10
    gateway_ring bob-invited $((port + 30)) "sip:alice@127.0.0.1:$port" invited
    gateway_wait_line invited '^dropping' 5
    # sipd answers 480 for an AOR without bindings; a binding left behind would reach the
    # gateway, which answers 404 for a contact it no longer has. The un-REGISTER may take a
    # moment under load: 10 s at most.
    local end=$((SECONDS + 10))
    while :; do
        sleep 0.5
        gateway_closed bob-after $((port + 30)) 10 "sip:alice@127.0.0.1:$port"
        grep -q '^closed: 480 ' "$CDIR/bob-after.out" && break
        ((SECONDS < end)) ||
            fail "alice's registration outlived her client: $(tail -1 "$CDIR/bob-after.out")"
    done
}

# 4. The gateway's lines register with Kamailio (-A WITH_AUTH, digest) instead of our own
#    SIP server and call through it: the python-librtmp phone calls baresip bob (registered
#    at Kamailio), publishes Speex, and bob hears 1 kHz.
check_gateway_kamailio() {
    phone_needs_baresip
    local port=21300
    phone_kamailio $port
    proxy_tones
    gateway_speex_flv "$CDIR/speex1000.flv" 1000 10
    gateway_baresip bob $port 10 auto secret
    gateway_start gw $((port + 35)) $port $((port + 60))
    proxy_fg timeout 40 "$PY" "$INTEROP_DIR/gateway_librtmp.py" call $((port + 35)) \
        "alice@127.0.0.1:$port" alice secret "sip:bob@127.0.0.1:$port" \
        "$CDIR/speex1000.flv" 5 wideband ulaw dtmf > "$CDIR/client.out" 2> "$CDIR/client.err" ||
        fail "python-librtmp through Kamailio: $(tail -1 "$CDIR/client.err")"
    proxy_tone_ok bob 1 1000 440
}

# 5. The same AOR connects twice (seed-spec §1.6): the older connection is closed and the
#    newer one is the phone that rings when bob calls alice.
check_gateway_same_aor() {
    local port=21400
    gateway_setup $port
    gateway_baresip bob $port 10 auto
    gateway_client first drop $port incoming
    local first=$LAST_PID
    gateway_wait_line first '^connected' 10
    sleep 1
    gateway_client second answer $port "$CDIR/speex1000.flv" 6 wideband ulaw dtmf
    local second=$LAST_PID
    gateway_wait_line second '^connected' 10
    local end=$((SECONDS + 10))
    while kill -0 "$first" 2> /dev/null; do
        ((SECONDS < end)) || fail "the older connection of alice was not closed"
        sleep 0.1
    done
    ! grep -q '^dropping' "$CDIR/first.out" || fail "the older connection got the call"
    gateway_dial bob-ctrl $((port + 30)) "sip:alice@127.0.0.1:$port" second 4
    wait "$second" || fail "the newer connection: $(tail -1 "$CDIR/second.err")"
    proxy_tone_ok bob 1 1000 440
}

# 7. Video through the gateway between two python-librtmp phones (sipd in between):
#    alice invites bob and publishes an H.264 FLV that ffmpeg encoded (libx264 Baseline, a
#    key frame a second); bob accepts, plays `remote` and records it. With (pcmu, h264)
#    the video crosses as RFC 6184 RTP between the two lines; with (wideband, flv) as the
#    seed's x-flv tunnel (`accepted('default', 'default')`). Bob's recording must decode:
#    frames, every one of them, without an error.
check_gateway_librtmp_video() {
    gateway_video 21500 "accepted pcmu h264" pcmu h264
}

check_gateway_librtmp_xflv() {
    gateway_video 21600 "accepted default default" wideband flv
}

# gateway_video PORT ACCEPTED CODEC...: the video check above on ports PORT.., with the
# codec list CODEC... on both sides and the `accepted` callback ACCEPTED expected.
gateway_video() {
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    local port=$1 accepted=$2 frames packets bob
    shift 2
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server "$port" --users "$CDIR/users.toml"
    ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 8 -c:v libx264 \
        -profile:v baseline -g 25 -bf 0 -pix_fmt yuv420p "$CDIR/in.flv" ||
        fail "ffmpeg could not encode the source"
    gateway_start gw $((port + 35)) "$port" $((port + 60))
    spawn bob "$PY" "$INTEROP_DIR/gateway_librtmp.py" record $((port + 35)) \
        "bob@127.0.0.1:$port" bob bobsecret "$CDIR/remote.flv" 8 "$@"
    bob=$LAST_PID
    gateway_wait_line bob connected 10
    proxy_fg timeout 40 "$PY" "$INTEROP_DIR/gateway_librtmp.py" callvideo $((port + 35)) \
        "alice@127.0.0.1:$port" alice secret "sip:bob@127.0.0.1:$port" \
        "$CDIR/in.flv" 6 "$@" > "$CDIR/alice.out" 2> "$CDIR/alice.err" ||
        fail "alice: $(tail -1 "$CDIR/alice.err")"
    grep -q "^callback $accepted" "$CDIR/alice.out" ||
        fail "no $accepted: $(grep callback "$CDIR/alice.out" | tr '\n' ' ')"
    wait "$bob" || fail "bob: $(tail -1 "$CDIR/bob.err")"
    packets=$(ffprobe -v error -count_packets -select_streams v -show_entries \
        stream=nb_read_packets -of csv=p=0 "$CDIR/remote.flv" 2> "$CDIR/ffprobe.err" | tr -d '[:space:]')
    frames=$(ffprobe -v error -count_frames -select_streams v -show_entries \
        stream=nb_read_frames -of csv=p=0 "$CDIR/remote.flv" 2>> "$CDIR/ffprobe.err" | tr -d '[:space:]')
    ((${frames:-0} >= 75)) ||
        fail "bob's recording decodes to ${frames:-no} frames ($(tr '\n' ' ' < "$CDIR/bob.out"))"
    [[ $frames == "$packets" ]] || fail "$packets video frames recorded, only $frames decode"
    ffmpeg -v error -i "$CDIR/remote.flv" -f null - > "$CDIR/decode.err" 2>&1
    [[ ! -s $CDIR/decode.err ]] || fail "decoding bob's recording: $(head -2 "$CDIR/decode.err")"
    note "$*: bob recorded $frames decodable frames (alice published 6 s at 25 fps)"
}

# gateway_video_baresip NAME PORT OFFSET ANSWERMODE MP4: as gateway_baresip (PCMU, plays
# 440 Hz), and a SIP video phone: H.264 from baresip-ffmpeg's avcodec (libx264 out,
# FFmpeg's decoder in), its camera the avformat source playing MP4 (looped), its screen
# fakevideo's display (headless); the snapshot filter saves a received picture on command.
gateway_video_baresip() {
    local name=$1 port=$2 off=$3
    [[ -f /usr/lib/baresip/modules/avcodec.so ]] ||
        fail "baresip's avcodec module missing (apt-get install baresip-ffmpeg)"
    phone_mk_baresip "$name" $((port + off)) $((port + off + 20)) $((port + off + 30)) \
        "$CDIR/tone440.wav" "<sip:$name@127.0.0.1:$port>;auth_pass=${name}secret;answermode=$4;audio_codecs=PCMU;regint=600"
    cat >> "$CDIR/baresip-$name/config" << CFG
module			avcodec.so
module			avformat.so
module			fakevideo.so
module			snapshot.so
video_source		avformat,$5
video_display		fakevideo,nil
video_size		320x240
video_bitrate		400000
video_fps		25
CFG
    proxy_baresip_start "$name"
    proxy_baresip_registered "$name" $((port + off + 20))
}

# gateway_h264 FILE SOURCE SECONDS [AUDIO_ARGS...]: a 320x240 25 fps libx264 Baseline
# stream of the lavfi SOURCE (a key frame a second), plus audio from AUDIO_ARGS.
gateway_h264() {
    local out=$1 src=$2 secs=$3
    shift 3
    ffmpeg -v error -y -f lavfi -i "$src=size=320x240:rate=25" "$@" -t "$secs" \
        -c:v libx264 -profile:v baseline -g 25 -bf 0 -pix_fmt yuv420p "$out" 2> "$CDIR/ffmpeg.err" ||
        fail "ffmpeg could not encode $out: $(tail -1 "$CDIR/ffmpeg.err")"
}

# gateway_flv_video LABEL FILE MIN_FRAMES: FILE (an FLV an RTMP client recorded) holds
# H.264 video of 320x240 that decodes without an error, at least MIN_FRAMES frames, every
# recorded one of them. Prints the frame count.
gateway_flv_video() {
    local label=$1 file=$2 min=$3 info packets frames
    [[ -s $file ]] || fail "$label: nothing recorded"
    info=$(ffprobe -v error -select_streams v -count_frames -count_packets -show_entries \
        stream=codec_name,width,height,nb_read_frames,nb_read_packets -of csv=p=0 "$file" \
        2> "$CDIR/$label-probe.err" | head -1)
    IFS=, read -r codec w h frames packets <<< "$info"
    [[ $codec == h264 ]] || fail "$label: no H.264 video recorded ($info; $(head -1 "$CDIR/$label-probe.err"))"
    [[ ${w}x$h == 320x240 ]] || fail "$label: video is ${w}x$h, sent 320x240"
    ((${frames:-0} >= min)) || fail "$label: only ${frames:-no} decodable frames (want $min)"
    [[ $frames == "$packets" ]] || fail "$label: $packets video frames recorded, only $frames decode"
    ffmpeg -v error -i "$file" -map 0:v -f null - > "$CDIR/$label-decode.err" 2>&1
    [[ ! -s $CDIR/$label-decode.err ]] || fail "$label: decoding: $(head -2 "$CDIR/$label-decode.err")"
    echo "$frames"
}

# gateway_match PICTURE VIDEO: "PSNR N": the frame N (from 1) of VIDEO that PICTURE is
# most like, and their PSNR in whole dB (99 when identical).
gateway_match() {
    ffmpeg -v error -i "$2" -loop 1 -i "$1" -lavfi \
        "[0:v]format=rgb24[a];[1:v]format=rgb24[b];[a][b]psnr=stats_file=$CDIR/psnr.log:shortest=1" \
        -f null - 2> "$CDIR/psnr.err" || fail "psnr of $1: $(head -1 "$CDIR/psnr.err")"
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^psnr_avg:/) { v = substr($i, 10);
            if (v == "inf") v = 99; if (v + 0 > best) { best = v + 0; n = substr($1, 3) } } }
        END { printf "%d %d\n", best, n }' "$CDIR/psnr.log"
}

# gateway_bv_setup PORT: sipd (alice, bob), the test tones, alice's FLV (H.264 testsrc and
# PCMU 1 kHz, 8 s), the gateway, and baresip bob as a video phone whose camera shows
# testsrc2 (ctrl on PORT+30).
gateway_bv_setup() {
    local port=$1
    "$PY" -c 'import librtmp' 2> /dev/null ||
        fail "python-librtmp not installed (pip install python-librtmp; needs librtmp-dev)"
    phone_needs_baresip
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server "$port" --users "$CDIR/users.toml"
    proxy_tones
    gateway_h264 "$CDIR/alice.flv" testsrc 8 -f lavfi -i sine=frequency=1000:sample_rate=8000 \
        -c:a pcm_mulaw -ar 8000 -ac 1
    gateway_h264 "$CDIR/bob.mp4" testsrc2 10
    gateway_start gw $((port + 35)) "$port" $((port + 60))
    gateway_video_baresip bob "$port" 10 auto "$CDIR/bob.mp4"
}

# gateway_bv_observe PORT: once alice's call is accepted (pcmu, h264), let video run, and
# have baresip save the picture it shows 3 s and 5 s into the call (seen-1.png,
# seen-2.png).
gateway_bv_observe() {
    local port=$1 n
    gateway_wait_line alice '^callback accepted' 15
    grep -q '^callback accepted pcmu h264' "$CDIR/alice.out" ||
        fail "no accepted('pcmu', 'h264'): $(grep callback "$CDIR/alice.out" | tr '\n' ' ')"
    for n in 1 2; do
        sleep $((4 - n))
        "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd $((port + 30)) snapshot_recv \
            "$CDIR/seen-$n.png" > "$CDIR/snapshot.out" 2>&1 ||
            fail "baresip snapshot_recv: $(tail -1 "$CDIR/snapshot.out")"
    done
}

# gateway_bv_verdict: baresip decoded alice's video: it reports receiving 320x240, and the
# two pictures it showed 2 s apart are alice's frames about 50 frames (2 s at 25 fps) apart,
# by PSNR; it heard her 1 kHz. Alice's recording of `remote` holds baresip's H.264, every
# frame decodable.
gateway_bv_verdict() {
    local n psnr frame first recorded
    grep -aq "video: receiving with resolution 320 x 240" "$CDIR/bob.out" ||
        fail "baresip did not report receiving 320x240 video: $(grep -a 'video:\|avcodec' "$CDIR/bob.out" | tail -2 | tr '\n' ' ')"
    for n in 1 2; do
        for _ in $(seq 1 20); do
            [[ -s $CDIR/seen-$n.png ]] && break
            sleep 0.1
        done
        [[ -s $CDIR/seen-$n.png ]] || fail "baresip saved no snapshot $n of the received video"
        read -r psnr frame <<< "$(gateway_match "$CDIR/seen-$n.png" "$CDIR/alice.flv")"
        # Another frame of testsrc scores 10-16 dB; the same one ~23 dB (baresip's own
        # YUV -> RGB conversion differs from FFmpeg's).
        ((psnr >= 20)) || fail "picture $n baresip showed is no frame of alice's video (best PSNR $psnr dB)"
        [[ $n == 2 ]] || first=$frame
    done
    ((frame - first >= 25 && frame - first <= 90)) ||
        fail "baresip's pictures 2 s apart are alice's frames $first and $frame"
    proxy_tone_ok bob 1 1000 440
    recorded=$(gateway_flv_video alice "$CDIR/remote.flv" 100) || exit 1
    note "baresip showed alice's frames $first and $frame (PSNR >= 20 dB); alice recorded $recorded decodable frames of baresip's video"
}

# 8. A video call with a real SIP video phone: the python-librtmp phone alice invites
#    baresip bob (auto answer, H.264 only) with (pcmu, h264), publishes H.264 (testsrc) and
#    PCMU 1 kHz on `local` and, on the same connection, plays `remote` and records it.
#    Through sipd and the gateway, the FLV/AVC <-> RTP (RFC 6184) translation runs both
#    ways: alice gets accepted('pcmu', 'h264'), and gateway_bv_verdict holds.
check_gateway_baresip_video() {
    local port=21700
    gateway_bv_setup $port
    gateway_client alice videocall "$port" "sip:bob@127.0.0.1:$port" "$CDIR/alice.flv" \
        "$CDIR/remote.flv" 8 pcmu h264
    local alice=$LAST_PID
    gateway_bv_observe $port
    wait "$alice" || fail "alice: $(tail -1 "$CDIR/alice.err")"
    gateway_bv_verdict
}

# 9. The other way: baresip bob calls alice with audio and video; the python-librtmp phone
#    accepts with (pcmu, h264) and runs the same media; bob hangs up after 7 s and alice
#    gets byed(); gateway_bv_verdict holds. (baresip's ctrl_tcp serves one connection at a
#    time: each command is its own.)
check_gateway_baresip_video_in() {
    local port=21800
    gateway_bv_setup $port
    gateway_client alice videoanswer "$port" "$CDIR/alice.flv" "$CDIR/remote.flv" 12 pcmu h264
    local alice=$LAST_PID
    gateway_wait_line alice '^connected' 10
    "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd $((port + 30)) dial "sip:alice@127.0.0.1:$port" \
        > "$CDIR/dial.out" 2>&1 || fail "baresip dial: $(tail -1 "$CDIR/dial.out")"
    gateway_bv_observe $port
    sleep 2
    "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd $((port + 30)) hangup > "$CDIR/hangup.out" 2>&1 ||
        fail "baresip hangup: $(tail -1 "$CDIR/hangup.out")"
    wait "$alice" || fail "alice: $(tail -1 "$CDIR/alice.err")"
    grep -q '^callback invited .*bob@127.0.0.1' "$CDIR/alice.out" ||
        fail "no invited(bob, alice): $(grep callback "$CDIR/alice.out" | tr '\n' ' ')"
    grep -q '^callback byed' "$CDIR/alice.out" || fail "no byed() after bob hung up"
    gateway_bv_verdict
}

# 10. Key-frame requests from a real SIP video phone: as gateway_baresip_video, but alice
#     leaves out her first key frame, so baresip's decoder starts on inter frames it
#     cannot decode and asks for a key frame by RTCP (an RFC 2032 FIR: no `rtcp-fb nack`
#     in our SDP). The gateway's video session must take it as a key-frame request (its
#     log says so); baresip decodes from alice's next key frame on (gateway_bv_verdict).
check_gateway_baresip_keyframe() {
    local port=21900
    gateway_bv_setup $port
    gateway_client alice videocall-nokey "$port" "sip:bob@127.0.0.1:$port" "$CDIR/alice.flv" \
        "$CDIR/remote.flv" 8 pcmu h264
    local alice=$LAST_PID
    gateway_bv_observe $port
    wait "$alice" || fail "alice: $(tail -1 "$CDIR/alice.err")"
    grep -aq 'RTCP key-frame request' "$CDIR/gw.err" ||
        fail "the gateway saw no RTCP key-frame request from baresip"
    gateway_bv_verdict
}
