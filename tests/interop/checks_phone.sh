# shellcheck shell=bash
# `switchboard phone` checks (sourced by phone.sh after lib.sh and checks_proxy.sh): the
# command-line phone registers with digest to `switchboard sipd` and to Kamailio, calls
# baresip and is called by it, with PCMU and Opus; each side must record the other's tone.
# Ports: 19000-19899, one block of 100 per check (19900-19999 are for cargo tests):
#   19000 phone_sipd_pcmu   19100 phone_sipd_opus   19200 phone_answer_pcmu
#   19300 phone_kamailio    19400 phone_dtmf        19500 phone_refused
#   19600 phone_answer_opus 19700 phone_dns_srv
# In a block B: server B, baresip SIP B+10 (and B+11), phones B+20 and B+24, baresip
# ctrl_tcp B+30, baresip RTP B+40..B+49, phone RTP B+60..B+69 and B+70..B+79, baresip DNS
# (a dead port) B+99.
# Needs baresip (baresip-core: g711, opus, aufile, sndfile modules), kamailio, dnsmasq
# (dnsmasq-base), python3.

# phone_start LABEL ARGS...: `switchboard phone ARGS` in the background, bounded by
# `timeout`; events in LABEL.out, log (-d) in LABEL.err, pid in LAST_PID.
phone_start() {
    local label=$1
    shift
    spawn "$label" timeout -k 2 45 "$SWITCHBOARD" phone -d "$@"
}

# phone_wait PID LABEL [WANT]: the phone's exit status must be WANT (default 0).
phone_wait() {
    local rc=0 want=${3:-0}
    wait "$1" || rc=$?
    if [[ $want == 0 && $rc -ne 0 ]]; then
        fail "phone $2 exited $rc: $(grep -a 'switchboard:' "$CDIR/$2.err" | tail -1)" \
            "(events: $(tr '\n' ';' < "$CDIR/$2.out"))"
    fi
    if [[ $want != 0 && $rc -eq 0 ]]; then
        fail "phone $2 exited 0, expected a failure (events: $(tr '\n' ';' < "$CDIR/$2.out"))"
    fi
}

# phone_saw LABEL REGEX WHAT: fail unless a line the phone printed matches REGEX.
phone_saw() {
    grep -qE "$2" "$CDIR/$1.out" ||
        fail "phone $1: $3 (events: $(tr '\n' ';' < "$CDIR/$1.out"))"
}

# phone_tone LABEL FILE EXPECTED_HZ OTHER_HZ: the phone's recording carries EXPECTED_HZ.
phone_tone() {
    [[ -s $2 ]] || fail "phone $1 recorded nothing ($2)"
    "$PY" "$INTEROP_DIR/proxy_tonecheck.py" check "$2" "$3" "$4" > "$CDIR/tone-$1.txt" 2>&1 ||
        fail "phone $1: received audio is not $3 Hz: $(tail -1 "$CDIR/tone-$1.txt")"
}

# phone_mk_baresip NAME SIP_PORT CTRL_PORT RTP_PORT SOURCE_WAV ACCOUNT: as
# proxy_mk_baresip, with the Opus module loaded too.
phone_mk_baresip() {
    local dir=$CDIR/baresip-$1
    mkdir -p "$dir/rec"
    short_link "$dir/rec"
    cat > "$dir/config" <<CFG
poll_method		epoll
sip_listen		127.0.0.1:$2
net_interface		127.0.0.1
dns_server		127.0.0.1:$(($2 / 100 * 100 + 99))
call_local_timeout	120
call_max_calls		4
audio_player		alsa,null
audio_source		aufile,$5
audio_alert		alsa,null
audio_buffer		20-160
rtp_ports		$4-$(($4 + 9))
rtcp_mux		no
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
ctrl_tcp_listen		127.0.0.1:$3
snd_path		$LAST_LINK
opus_bitrate		28000
CFG
    echo "$6" > "$dir/accounts"
}

# phone_stereo48k FILE HZ: a 30 s stereo 48 kHz s16 sine (baresip's aufile wants the
# channels and rate of opus/48000/2).
phone_stereo48k() {
    "$PY" - "$1" "$2" <<'PY'
import math, struct, sys, wave
path, hz = sys.argv[1], float(sys.argv[2])
rate, amp = 48000, 0.5 * 32767
with wave.open(path, "wb") as w:
    w.setnchannels(2)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"".join(
        struct.pack("<hh", v, v)
        for v in (int(round(amp * math.sin(2 * math.pi * hz * i / rate))) for i in range(30 * rate))))
PY
}

# phone_needs_baresip: fail early with an install hint.
phone_needs_baresip() {
    command -v baresip > /dev/null || fail "baresip not installed (apt-get install baresip-core)"
}

# phone_kamailio PORT: Kamailio (tests/interop/kamailio/kamailio.cfg, -A WITH_AUTH) on
# udp+tcp 127.0.0.1:PORT, in the foreground of its own process (killed on exit).
phone_kamailio() {
    local port=$1
    command -v kamailio > /dev/null || fail "kamailio not installed (apt-get install kamailio)"
    mkdir -p "$CDIR/kamailio-run"
    sed "s/@PORT@/$port/g" "$INTEROP_DIR/kamailio/kamailio.cfg" > "$CDIR/kamailio.cfg"
    spawn kamailio kamailio -f "$CDIR/kamailio.cfg" -P "$CDIR/kamailio.pid" \
        -Y "$CDIR/kamailio-run" -DD -E -m 1024 -A WITH_AUTH
    wait_udp "$port" "$LAST_PID" kamailio
}

# phone_call_baresip PORT CODEC PHONE_CODECS BARESIP_WAV [ACCOUNT_PASSWORD] [SERVER]:
# the shared body of the "phone calls baresip" checks. baresip bob (plays 440 Hz,
# auto-answers, only CODEC, written as baresip wants it: PCMU, opus/48000/2) registers at 127.0.0.1:PORT; the phone alice registers with
# digest and calls sip:bob@127.0.0.1:PORT with PHONE_CODECS, plays 1000 Hz for 5 s, hangs
# up. The phone must print registered/ringing/accepted <codec>; both recordings must
# carry the other side's tone.
phone_call_baresip() {
    local port=$1 codec=$2 codecs=$3 wav=$4 bob_pass=${5:-bobsecret} alice_pass=${6:-secret}
    phone_mk_baresip bob $((port + 10)) $((port + 30)) $((port + 40)) "$wav" \
        "<sip:bob@127.0.0.1:$port>;auth_pass=$bob_pass;answermode=auto;audio_codecs=$codec;regint=600"
    proxy_baresip_start bob
    proxy_baresip_registered bob $((port + 30))
    spawn bob-ctrl timeout 40 "$PY" "$INTEROP_DIR/phone_baresip.py" answered $((port + 30)) 30
    local watcher=$LAST_PID
    sleep 0.3
    phone_start alice --aor "alice@127.0.0.1:$port" --user alice --password "$alice_pass" \
        --proxy "127.0.0.1:$port" --listen "127.0.0.1:$((port + 20))" \
        --rtp-ports $((port + 60))-$((port + 69)) --call "sip:bob@127.0.0.1:$port" \
        --codecs "$codecs" --play "$CDIR/tone1000.wav" --record "$CDIR/alice.wav" --duration 5
    phone_wait "$LAST_PID" alice
    phone_saw alice '^registered [0-9]+$' "no 'registered' event"
    local name=${codec%%/*}
    phone_saw alice '^accepted '"${name,,}"'$' "no 'accepted ${name,,}' event"
    phone_saw alice '^closed$' "the line did not close"
    local rc=0
    wait "$watcher" || rc=$?
    [[ $rc -eq 0 ]] || fail "baresip bob: $(tr '\n' ' ' < "$CDIR/bob-ctrl.err")"
    phone_tone alice "$CDIR/alice.wav" 440 1000
    proxy_tone_ok bob 1 1000 440
}

# 1. phone -> sipd (digest) -> baresip, PCMU.
check_phone_sipd_pcmu() {
    phone_needs_baresip
    local port=19000
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    proxy_tones
    phone_call_baresip $port PCMU "pcmu dtmf" "$CDIR/tone440.wav"
}

# 2. phone -> sipd (digest) -> baresip, Opus (baresip offers/answers only Opus; its
#    aufile source must be 48 kHz stereo).
check_phone_sipd_opus() {
    phone_needs_baresip
    local port=19100
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    proxy_tones
    phone_stereo48k "$CDIR/tone440-48k.wav" 440
    phone_call_baresip $port opus/48000/2 "opus dtmf" "$CDIR/tone440-48k.wav"
}

# phone_answer_baresip PORT CODEC BARESIP_WAV: baresip alice (plays 440 Hz, only CODEC as
# baresip writes it)
# dials the phone bob (`--answer`, registered with digest at sipd) and hangs up after 5 s.
# The phone must print invited/accepted <codec>/byed and exit 0; tones both ways.
phone_answer_baresip() {
    local port=$1 codec=$2 wav=$3
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server "$port" --users "$CDIR/users.toml"
    proxy_tones
    phone_start bob --aor "bob@127.0.0.1:$port" --password bobsecret --proxy "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 20))" --rtp-ports $((port + 60))-$((port + 69)) \
        --answer --wait 30 --play "$CDIR/tone1000.wav" --record "$CDIR/bob.wav"
    local bob=$LAST_PID
    for _ in $(seq 1 50); do
        grep -q '^registered' "$CDIR/bob.out" && break
        kill -0 "$bob" 2> /dev/null || break
        sleep 0.1
    done
    phone_saw bob '^registered [0-9]+$' "not registered within 5 s"
    phone_mk_baresip alice $((port + 10)) $((port + 30)) $((port + 40)) "$wav" \
        "<sip:alice@127.0.0.1:$port>;auth_pass=secret;answermode=auto;audio_codecs=$codec;regint=600"
    proxy_baresip_start alice
    proxy_baresip_registered alice $((port + 30))
    proxy_fg timeout 30 "$PY" "$INTEROP_DIR/phone_baresip.py" dial $((port + 30)) \
        "sip:bob@127.0.0.1:$port" 5 > "$CDIR/alice-ctrl.out" 2> "$CDIR/alice-ctrl.err" ||
        fail "baresip alice: $(tr '\n' ' ' < "$CDIR/alice-ctrl.err")"
    phone_wait "$bob" bob
    phone_saw bob '^invited sip:alice@127\.0\.0\.1' "no 'invited' event"
    local name=${codec%%/*}
    phone_saw bob '^accepted '"${name,,}"'$' "no 'accepted ${name,,}' event"
    phone_saw bob '^byed$' "no 'byed' event"
    phone_tone bob "$CDIR/bob.wav" 440 1000
    proxy_tone_ok alice 1 1000 440
}

# 3. baresip -> sipd -> phone --answer, PCMU.
check_phone_answer_pcmu() {
    phone_needs_baresip
    phone_answer_baresip 19200 PCMU "$CDIR/tone440.wav"
}

# 7. baresip -> sipd -> phone --answer, Opus only: the phone answers with Opus although its
#    codec list is the default (its media decodes any codec it negotiates).
check_phone_answer_opus() {
    phone_needs_baresip
    phone_stereo48k "$CDIR/tone440-48k.wav" 440
    phone_answer_baresip 19600 opus/48000/2 "$CDIR/tone440-48k.wav"
}

# 4. phone -> Kamailio (-A WITH_AUTH: digest on REGISTER, password "secret") -> baresip.
check_phone_kamailio() {
    phone_needs_baresip
    local port=19300
    phone_kamailio $port
    proxy_tones
    phone_call_baresip $port PCMU "pcmu dtmf" "$CDIR/tone440.wav" secret secret
}

# 5. phone -> sipd -> phone --answer with DTMF: the caller sends 159#* after the call is up
#    as RFC 4733 events; the callee prints each digit once, in order. Tones both ways;
#    the caller's --json events are valid JSON objects.
check_phone_dtmf() {
    local port=19400 bob
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    proxy_tones
    phone_start bob --aor "bob@127.0.0.1:$port" --password bobsecret --proxy "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 24))" --rtp-ports $((port + 70))-$((port + 79)) \
        --answer --wait 30 --play "$CDIR/tone440.wav" --record "$CDIR/bob.wav"
    bob=$LAST_PID
    for _ in $(seq 1 50); do
        grep -q '^registered' "$CDIR/bob.out" && break
        sleep 0.1
    done
    phone_start alice --aor "alice@127.0.0.1:$port" --password secret --proxy "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 20))" --rtp-ports $((port + 60))-$((port + 69)) \
        --call "bob@127.0.0.1:$port" --play "$CDIR/tone1000.wav" --record "$CDIR/alice.wav" \
        --dtmf '159#*' --duration 5 --json
    phone_wait "$LAST_PID" alice
    phone_wait "$bob" bob
    local digits
    digits=$(sed -n 's/^dtmf \(.\)$/\1/p' "$CDIR/bob.out" | tr -d '\n')
    [[ $digits == '159#*' ]] || fail "bob received DTMF '$digits', expected '159#*'"
    "$PY" -c 'import json, sys
kinds = [json.loads(l)["event"] for l in open(sys.argv[1]) if l.strip()]
assert "accepted" in kinds and "registered" in kinds, kinds' "$CDIR/alice.out" 2> "$CDIR/json.err" ||
        fail "alice --json output is not JSON events: $(tail -1 "$CDIR/json.err")"
    grep -q '"event":"accepted","codec":"pcmu"' "$CDIR/alice.out" ||
        fail "alice: no accepted pcmu event in JSON"
    phone_tone alice "$CDIR/alice.wav" 440 1000
    phone_tone bob "$CDIR/bob.wav" 1000 440
}

# 6. Failures are reported: a wrong password gives `registration-failed 403 ...`, the
#    SIP reason on stderr and a non-zero exit; a call to a user with no registration
#    gives `rejected 480 ...` and a non-zero exit.
check_phone_refused() {
    local port=19500
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    phone_start wrong --aor "alice@127.0.0.1:$port" --password nope --proxy "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 20))" --duration 1
    phone_wait "$LAST_PID" wrong 1
    phone_saw wrong '^registration-failed 403 ' "no 'registration-failed 403' event"
    grep -q 'registration refused: 403' "$CDIR/wrong.err" ||
        fail "stderr does not give the SIP reason: $(tail -1 "$CDIR/wrong.err")"
    phone_start nobody --aor "alice@127.0.0.1:$port" --password secret --proxy "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 24))" --rtp-ports $((port + 60))-$((port + 69)) \
        --call "sip:bob@127.0.0.1:$port" --duration 1
    phone_wait "$LAST_PID" nobody 1
    phone_saw nobody '^rejected 480 ' "no 'rejected 480' event"
    grep -q 'call failed: 480' "$CDIR/nobody.err" ||
        fail "stderr does not give the SIP reason: $(tail -1 "$CDIR/nobody.err")"
}

# 8. RFC 3263 without an outbound proxy: dnsmasq (on 127.0.0.1, `--dns`) holds only an SRV
#    record _sip._udp.voip.test -> sip-server.voip.test:PORT (sipd). Two phones register
#    as alice@voip.test and bob@voip.test through it, and alice calls plain `bob` (a user
#    at her AOR's domain, located the same way); bob answers, tones both ways.
check_phone_dns_srv() {
    command -v dnsmasq > /dev/null || fail "dnsmasq not installed (apt-get install dnsmasq-base)"
    local port=19700 dns=19790 bob
    spawn dns dnsmasq --no-daemon --no-resolv --no-hosts --conf-file=/dev/null \
        --bind-interfaces --listen-address=127.0.0.1 --port=$dns --pid-file= --local=/test/ \
        --host-record=sip-server.voip.test,127.0.0.1 \
        --srv-host=_sip._udp.voip.test,sip-server.voip.test,$port,10,50
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml" -r voip.test
    proxy_tones
    phone_start bob --aor bob@voip.test --password bobsecret --dns 127.0.0.1:$dns \
        --listen "127.0.0.1:$((port + 24))" --rtp-ports $((port + 70))-$((port + 79)) \
        --answer --wait 30 --play "$CDIR/tone440.wav" --record "$CDIR/bob.wav"
    bob=$LAST_PID
    for _ in $(seq 1 50); do
        grep -q '^registered' "$CDIR/bob.out" && break
        kill -0 "$bob" 2> /dev/null || break
        sleep 0.1
    done
    phone_saw bob '^registered [0-9]+$' "not registered within 5 s through the SRV record"
    phone_start alice --aor alice@voip.test --password secret --dns 127.0.0.1:$dns \
        --listen "127.0.0.1:$((port + 20))" --rtp-ports $((port + 60))-$((port + 69)) \
        --call bob --play "$CDIR/tone1000.wav" --record "$CDIR/alice.wav" --duration 4
    phone_wait "$LAST_PID" alice
    phone_wait "$bob" bob
    phone_saw alice '^registered [0-9]+$' "no 'registered' event"
    phone_saw alice '^accepted pcmu$' "no 'accepted pcmu' event"
    phone_saw bob '^invited sip:alice@voip\.test sip:bob@voip\.test$' "no 'invited' from alice@voip.test"
    phone_tone alice "$CDIR/alice.wav" 440 1000
    phone_tone bob "$CDIR/bob.wav" 1000 440
}
