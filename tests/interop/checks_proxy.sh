# shellcheck shell=bash
# Proxy checks (sourced by proxy.sh after lib.sh): calls through `switchboard sipd` acting as
# a stateful proxy (RFC 3261 §16) between sipp UAs and between baresip softphones.
# Ports: 17000-17999, one block of 100 per check, the server on the block's first port:
# 17000 proxy_naive_uac, 17100 proxy_call, 17200 proxy_cancel, 17300 proxy_busy,
# 17400 proxy_fork, 17500 proxy_baresip_udp, 17600 proxy_baresip_udp_tcp, 17700 proxy_redirect,
# 17800 proxy_unavailable, 17900 proxy_cancel_early; 16500 proxy_stall.
# Needs sipp (Debian sip-tester), baresip (baresip-core: aufile, sndfile, g711, alsa modules)
# and python3 (standard library only: the tones are written and analysed in pure Python).

PROXY_CID=   # -cid_str shared by the sipp UAS(es) and UAC of one check (see proxy_uas_*.xml)

# proxy_sipp LABEL LOCAL_PORT SERVER_PORT SCENARIO [SIPP ARGS...]: sipp in the background
# (SCENARIO: a file in sipp/, or builtin:NAME for sipp's own -sn NAME),
# bounded (-m 1, -timeout, -recv_timeout, and `timeout`), traces in LABEL.{msg,errors,log},
# stdout LABEL.out; its pid in LAST_PID (collect the status with `wait`). sipp also binds
# media ports (LOCAL_PORT+50 and +52) and a control port (LOCAL_PORT+53; by default it would
# take 6000, 6002 and 0.0.0.0:8888), so keep LOCAL_PORTs of one check 4 apart, below block+40.
proxy_sipp() {
    local label=$1 lport=$2 sport=$3 scen=(-sf "$SIPP_DIR/$4")
    shift 4
    [[ ${scen[1]} == */builtin:* ]] && scen=(-sn "${scen[1]##*/builtin:}")
    rm -f "$CDIR/$label".{msg,errors,log,out,err}
    spawn "$label" timeout -k 2 40 sipp "127.0.0.1:$sport" "${scen[@]}" \
        -i 127.0.0.1 -p "$lport" -mp $((lport + 50)) -cp $((lport + 53)) -t u1 \
        -m 1 -timeout 30s -timeout_error -recv_timeout 15s -max_retrans 3 -nostdin \
        -cid_str "${PROXY_CID:?}" \
        -trace_msg -message_file "$CDIR/$label.msg" \
        -trace_err -error_file "$CDIR/$label.errors" \
        -trace_logs -log_file "$CDIR/$label.log" \
        "$@"
}

# proxy_fg CMD...: run CMD and return its status, but as a background job that the check
# waits for: bash defers a trap (TERM from proxy.sh, Ctrl-C) until a foreground command ends,
# while `wait` returns at once. CMD is killed with everything else when the check exits.
proxy_fg() {
    "$@" &
    PIDS+=("$!")
    wait "$!"
}

# proxy_new_cid: a fresh shared Call-ID pattern for this check's sipp instances.
proxy_new_cid() {
    PROXY_CID="proxy-$CHECK-$$-$RANDOM-%u"
}

# proxy_wait PID LABEL: the exit status of a proxy_sipp; fails the check if it is not 0.
proxy_wait() {
    local rc=0
    wait "$1" || rc=$?
    [[ $rc -eq 0 ]] || fail "$(sipp_why "$2") [exit $rc]"
}

# proxy_msgs FILE sent|received REGEX [CSEQ_METHOD]: every message of that direction in a
# sipp -trace_msg file whose first line matches REGEX (extended) [and whose CSeq method is
# CSEQ_METHOD], CRs stripped, each followed by a line "=====".
proxy_msgs() {
    tr -d '\r' < "$1" | awk -v dir="$2" -v re="$3" -v meth="${4:-}" '
        function flush() {
            if (keep && (meth == "" || cur ~ ("\nCSeq: *[0-9]+ " meth "\n"))) printf "%s=====\n", cur
            keep = 0; cur = "" }
        /^-----------------------------------------------/ { flush(); inmsg = 0; next }
        / message (sent|received)/ {
            inmsg = ($0 ~ ("message " dir)); started = 0; cur = ""; next }
        inmsg && !started && /^$/ { next }
        inmsg && !started { started = 1; keep = ($0 ~ re) }
        inmsg { cur = cur $0 "\n" }
        END { flush() }'
}

# proxy_last FILE sent|received REGEX [CSEQ_METHOD]: the last such message (without the separator).
proxy_last() {
    proxy_msgs "$@" | awk '/^=====$/ { last = cur; cur = ""; next } { cur = cur $0 "\n" }
        END { printf "%s", last }'
}

# proxy_count FILE sent|received REGEX [CSEQ_METHOD]: how many such messages.
proxy_count() {
    proxy_msgs "$@" | grep -c '^=====$' || true
}

# hdr MSG NAME: the values of header NAME (full name, case-insensitive) in MSG, one per line.
hdr() {
    printf '%s' "$1" | awk -v h="$2" '
        /^$/ { exit }
        { n = index($0, ":"); if (n && tolower(substr($0, 1, n - 1)) == tolower(h)) {
              v = substr($0, n + 1); sub(/^[ \t]+/, "", v); print v } }'
}

# proxy_wait_registered LABEL PID: wait (10 s) until the sipp UAS LABEL got its 200 for REGISTER.
proxy_wait_registered() {
    local label=$1 pid=$2
    for _ in $(seq 1 100); do
        [[ $(proxy_count "$CDIR/$label.msg" received '^SIP/2\.0 200') -ge 1 ]] && return 0
        kill -0 "$pid" 2> /dev/null || fail "$label exited before registering: $(sipp_why "$label")"
        sleep 0.1
    done
    fail "$label: no 200 for its REGISTER within 10 s"
}

# proxy_server PORT [ARGS...]: start sipd on udp/PORT (debug log in srv.err) and wait for it.
proxy_server() {
    local port=$1
    shift
    start_server srv -l "127.0.0.1:$port" -t udp --data "$CDIR/data" -d "$@"
    SRV_PID=$LAST_PID
    wait_udp "$port" "$SRV_PID" srv
}

# 1. sipp UAC -> switchboard -> sipp UAS (registered first): INVITE/180/200/ACK/BYE/200.
#    The proxy Record-Routes; the UAS copies Record-Route into its 200; the UAC sends ACK and
#    BYE to the proxy with Route: <proxy;lr> and Request-URI = the UAS Contact; the proxy
#    consumes its Route entry and delivers them to the UAS.
check_proxy_call() {
    local port=17100 rr inv ok200 m sent got
    proxy_new_cid
    proxy_server $port
    rr="<sip:127.0.0.1:$port;lr>"

    proxy_sipp uas 17110 $port proxy_uas_answer.xml -s bob
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    proxy_sipp uac 17120 $port proxy_uac_call.xml -s bob -d 500
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas

    inv=$(proxy_last "$CDIR/uas.msg" received '^INVITE ')
    grep -qxF "$rr" <<< "$(hdr "$inv" Record-Route)" ||
        fail "INVITE at the UAS lacks Record-Route $rr: $(hdr "$inv" Record-Route | tr '\n' ' ')"
    [[ $(hdr "$inv" Via | wc -l) -eq 2 ]] ||
        fail "INVITE at the UAS has not 2 Vias: $(hdr "$inv" Via | tr '\n' '|')"
    [[ $(head -1 <<< "$inv") == "INVITE sip:bob@127.0.0.1:17110 SIP/2.0" ]] ||
        fail "INVITE at the UAS not retargeted to its Contact: $(head -1 <<< "$inv")"
    ok200=$(proxy_last "$CDIR/uac.msg" received '^SIP/2\.0 200' INVITE)
    grep -qxF "$rr" <<< "$(hdr "$ok200" Record-Route)" ||
        fail "200 at the UAC lacks Record-Route $rr: $(hdr "$ok200" Record-Route | tr '\n' ' ')"
    [[ $(hdr "$ok200" Via | wc -l) -eq 1 ]] || fail "200 at the UAC still has the proxy's Via"

    for m in ACK BYE; do
        sent=$(proxy_last "$CDIR/uac.msg" sent "^$m ")
        [[ $(head -1 <<< "$sent") == "$m sip:bob@127.0.0.1:17110 SIP/2.0" ]] ||
            fail "UAC's $m does not target the UAS Contact: $(head -1 <<< "$sent")"
        [[ $(hdr "$sent" Route) == "$rr" ]] || fail "UAC's $m has no Route $rr: $(hdr "$sent" Route)"
        got=$(proxy_last "$CDIR/uas.msg" received "^$m ")
        [[ -n $got ]] || fail "UAS did not receive the $m"
        [[ $(hdr "$got" Via | head -1) == "SIP/2.0/UDP 127.0.0.1:$port;"* ]] ||
            fail "$m reached the UAS without passing the proxy (top Via $(hdr "$got" Via | head -1))"
        [[ -z $(hdr "$got" Route) ]] || fail "$m at the UAS still carries Route: $(hdr "$got" Route)"
    done
}

# 10. A naive UAC (sipp's built-in `uac`) ignores Record-Route: it sends ACK and BYE to the
#    proxy with Request-URI sip:bob@proxy and no Route. The proxy must treat them as requests
#    for its user (location lookup) and deliver them to the callee, so the call completes.
check_proxy_naive_uac() {
    local port=17000 m got
    proxy_new_cid
    proxy_server $port
    proxy_sipp uas 17010 $port proxy_uas_answer.xml -s bob
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    proxy_sipp uac 17020 $port builtin:uac -s bob -d 300
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas
    for m in ACK BYE; do
        got=$(proxy_last "$CDIR/uac.msg" sent "^$m ")
        [[ -z $(hdr "$got" Route) && $(head -1 <<< "$got") == "$m sip:bob@127.0.0.1:$port "* ]] ||
            fail "sipp's built-in uac now honours Record-Route (test premise broken): $(head -1 <<< "$got")"
        got=$(proxy_last "$CDIR/uas.msg" received "^$m ")
        [[ $(head -1 <<< "$got") == "$m sip:bob@127.0.0.1:17010 SIP/2.0" ]] ||
            fail "$m at the UAS: '$(head -1 <<< "$got")', expected it retargeted to the Contact"
    done
}

# 2. CANCEL of a ringing call: the UAS rings (180) and never answers; the UAC CANCELs and gets
#    200 (CANCEL) and 487, and ACKs; the UAS sees the CANCEL, answers 200 and 487, gets the ACK.
check_proxy_cancel() {
    local port=17200 c487
    proxy_new_cid
    proxy_server $port
    proxy_sipp uas 17210 $port proxy_uas_ring.xml -s bob
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    proxy_sipp uac 17220 $port proxy_uac_cancel.xml -s bob
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas
    [[ $(proxy_count "$CDIR/uas.msg" received '^CANCEL ') -ge 1 ]] || fail "the UAS saw no CANCEL"
    c487=$(proxy_last "$CDIR/uac.msg" received '^SIP/2\.0 487')
    [[ $(hdr "$c487" CSeq) == "1 INVITE" ]] || fail "487 at the UAC has CSeq $(hdr "$c487" CSeq)"
}

# 3. CANCEL before the callee sent anything: the UAS stays silent for 1.5 s, the UAC CANCELs
#    after 300 ms. The proxy answers the CANCEL (200) at once but must hold its own CANCEL
#    until the branch has a provisional response (RFC 3261 §9.1); then 487 reaches the UAC.
check_proxy_cancel_early() {
    local port=17900 order
    proxy_new_cid
    proxy_server $port
    proxy_sipp uas 17910 $port proxy_uas_ring.xml -s bob -d 1500
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    proxy_sipp uac 17920 $port proxy_uac_cancel_early.xml -s bob
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas
    order=$(proxy_msgs "$CDIR/uas.msg" sent '^SIP/2\.0 180' | head -1)
    [[ -n $order ]] || fail "the UAS sent no 180 (test bug?)"
    order=$(tr -d '\r' < "$CDIR/uas.msg" | grep -E '^(CANCEL sip|SIP/2\.0 180)' | head -1)
    [[ $order == "SIP/2.0 180"* ]] || fail "the proxy forwarded the CANCEL before the UAS sent a provisional"
}

# 4. Busy: the UAS answers 486; the UAC gets the 486 and ACKs it (the proxy ACKs the UAS).
check_proxy_busy() {
    local port=17300 r
    proxy_new_cid
    proxy_server $port
    proxy_sipp uas 17310 $port proxy_uas_busy.xml -s bob
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    proxy_sipp uac 17320 $port proxy_uac_busy.xml -s bob
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas
    r=$(proxy_last "$CDIR/uac.msg" received '^SIP/2\.0 486')
    [[ $(hdr "$r" Via | wc -l) -eq 1 ]] || fail "486 at the UAC still has the proxy's Via"
}

# 5. Forking: two UASs register the same user; both ring; one answers after ~1 s, the other
#    is CANCELled and answers 487. The UAC gets exactly one 200 and completes ACK/BYE with
#    the winner.
check_proxy_fork() {
    local port=17400 n
    proxy_new_cid
    proxy_server $port
    proxy_sipp winner 17410 $port proxy_uas_answer.xml -s bob -d 1000
    local win=$LAST_PID
    proxy_wait_registered winner "$win"
    proxy_sipp loser 17414 $port proxy_uas_ring.xml -s bob
    local lose=$LAST_PID
    proxy_wait_registered loser "$lose"
    proxy_sipp uac 17420 $port proxy_uac_call.xml -s bob -d 300
    local uac=$LAST_PID
    proxy_wait "$uac" uac
    proxy_wait "$win" winner
    proxy_wait "$lose" loser

    [[ $(proxy_count "$CDIR/winner.msg" received '^INVITE ') -ge 1 ]] || fail "winner got no INVITE"
    [[ $(proxy_count "$CDIR/loser.msg" received '^INVITE ') -ge 1 ]] || fail "loser got no INVITE"
    [[ $(proxy_count "$CDIR/loser.msg" received '^CANCEL ') -ge 1 ]] || fail "the losing branch saw no CANCEL"
    n=$(proxy_count "$CDIR/uac.msg" received '^SIP/2\.0 200' INVITE)
    [[ $n -eq 1 ]] || fail "UAC received $n 200s for the INVITE, expected exactly 1"
    n=$(proxy_count "$CDIR/uac.msg" received '^SIP/2\.0 487')
    [[ $n -eq 0 ]] || fail "UAC received a 487 from the cancelled branch"
    n=$(proxy_count "$CDIR/uac.msg" received '^SIP/2\.0 180')
    [[ $n -eq 2 ]] || fail "UAC received $n 180s, expected one per branch (2)"
    n=$(proxy_last "$CDIR/uac.msg" sent '^BYE ' | head -1)
    [[ $n == "BYE sip:bob@127.0.0.1:17410 SIP/2.0" ]] ||
        fail "BYE not sent to the winner's Contact"
}

# 8. Redirect mode: INVITE for a user with two registered contacts gets 302 listing both.
check_proxy_redirect() {
    local port=17700 r c
    proxy_new_cid
    proxy_server $port --mode redirect
    # shellcheck disable=SC2034  # read by sipp_run (lib.sh)
    SIPP_PORT=17730
    sipp_run reg1 $port proxy_register.xml -mp 17780 -cp 17783 -s bob -set contact sip:bob@127.0.0.1:17710 ||
        fail "$(sipp_why reg1)"
    sipp_run reg2 $port proxy_register.xml -mp 17780 -cp 17783 -s bob \
        -set contact "sip:bob@127.0.0.1:17714;transport=tcp" ||
        fail "$(sipp_why reg2)"
    proxy_sipp uac 17720 $port proxy_uac_redirect.xml -s bob
    proxy_wait "$LAST_PID" uac
    r=$(proxy_last "$CDIR/uac.msg" received '^SIP/2\.0 302')
    c=$(contacts_of "$r")
    grep -qE '^<sip:bob@127\.0\.0\.1:17710>' <<< "$c" || fail "302 lacks contact :17710: ${c//$'\n'/ | }"
    grep -qE '^<sip:bob@127\.0\.0\.1:17714;transport=tcp>' <<< "$c" ||
        fail "302 lacks contact :17714;transport=tcp: ${c//$'\n'/ | }"
    [[ $(proxy_count "$CDIR/uac.msg" received '^SIP/2\.0 (18|2)') -eq 0 ]] ||
        fail "redirect server let the call ring or answered it"
}

# 9. Calls the proxy refuses itself: with a users file, a known user with no registered
#    contact gets 480 and an unknown user 404; without one (open registration) any
#    unregistered user gets 480. The UAC ACKs each; nothing rings.
check_proxy_unavailable() {
    local port=17800 r code label sport user want
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_new_cid
    start_server srv -l "127.0.0.1:$port" -t udp --data "$CDIR/data-users" -d --users "$CDIR/users.toml"
    wait_udp $port "$LAST_PID" srv
    start_server open -l "127.0.0.1:$((port + 1))" -t udp --data "$CDIR/data-open" -d
    wait_udp $((port + 1)) "$LAST_PID" open
    for r in "users-bob $port bob 480" "users-nobody $port nobody 404" "open-bob $((port + 1)) bob 480"; do
        read -r label sport user want <<< "$r"
        proxy_sipp "$label" 17820 "$sport" proxy_uac_reject.xml -s "$user"
        proxy_wait "$LAST_PID" "$label"
        code=$(proxy_msgs "$CDIR/$label.msg" received '^SIP/2\.0 [2-6]' INVITE | head -1 | cut -d' ' -f2)
        [[ $code == "$want" ]] || fail "$label: INVITE for $user answered $code, expected $want"
    done
}

# proxy_mk_baresip NAME SIP_PORT CTRL_PORT RTP_PORT SOURCE_WAV ACCOUNT: a headless baresip
# config in $CDIR/baresip-NAME: plays SOURCE_WAV (aufile) into calls, plays what it receives
# to ALSA's "null" device, and the sndfile filter records each call to rec/dump-*-{enc,dec}.wav
# (dec = what it received). baresip binds SIP_PORT and SIP_PORT+1 (keep UAs 4 apart); RTP
# and RTCP use RTP_PORT..RTP_PORT+9. Its DNS client is pointed at a dead loopback port (the
# check block's last port): the checks use IP addresses only, nothing may leave 127.0.0.1.
proxy_mk_baresip() {
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
module			alsa.so
module			aufile.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$3
snd_path		$LAST_LINK
CFG
    echo "$6" > "$dir/accounts"
}

# proxy_baresip_start NAME...: run each configured baresip (SIP trace on). Bounded by its own
# -t (quits after 80 s) rather than by `timeout`, so that the check's cleanup, which ends
# with SIGKILL, reaches baresip itself (on SIGTERM it first hangs up and un-registers).
proxy_baresip_start() {
    local name
    for name in "$@"; do
        spawn "$name" baresip -f "$CDIR/baresip-$name" -s -t 80
    done
}

# proxy_baresip_registered NAME CTRL_PORT: wait until baresip NAME is registered (10 s).
proxy_baresip_registered() {
    proxy_fg "$PY" "$INTEROP_DIR/proxy_baresip.py" registered "$2" 10 2> "$CDIR/reg-$1.err" ||
        fail "$1 not registered: $(tr '\n' ' ' < "$CDIR/reg-$1.err") (baresip says: $(
            grep -a 'reg:\|register' "$CDIR/$1.out" | sed -E 's/\x1b\[[0-9;]*m//g' | tail -1))"
}

# proxy_baresip_call LABEL CALLER_CTRL CALLEE_CTRL URI SECONDS: one call, caller hangs up.
proxy_baresip_call() {
    proxy_fg timeout 40 "$PY" "$INTEROP_DIR/proxy_baresip.py" call "$2" "$3" "$4" "$5" \
        > "$CDIR/$1.events" 2> "$CDIR/$1.err" ||
        fail "call $1 ($4): $(tr '\n' ' ' < "$CDIR/$1.err")"
}

# proxy_bs_flows NAME: baresip NAME's SIP trace (-s) as one line per message:
# "UDP|TCP SRC -> DST | START-LINE".
proxy_bs_flows() {
    sed -E 's/\x1b\[[0-9;]*m//g' "$CDIR/$1.out" | tr -d '\r' | awk '
        /^(UDP|TCP|TLS|WS) [0-9.:]+ -> [0-9.:]+$/ { hop = $0; next }
        hop != "" { print hop " | " $0; hop = "" }'
}

# proxy_bs_saw NAME REGEX WHAT: fail unless a line of proxy_bs_flows NAME matches REGEX.
proxy_bs_saw() {
    proxy_bs_flows "$1" | grep -qE "$2" ||
        fail "$1: $3 (trace: $(proxy_bs_flows "$1" | grep -vE 'REGISTER|^[^|]*\| SIP/2\.0 (401|200 OK$)' |
            cut -d'|' -f1,2 | tr '\n' ';' | cut -c1-600))"
}

# proxy_tone_ok NAME N EXPECTED_HZ OTHER_HZ: the N-th call recorded by baresip NAME (its
# N-th rec/*-dec.wav in time order) carries mostly EXPECTED_HZ.
proxy_tone_ok() {
    local name=$1 n=$2 f
    for _ in $(seq 1 20); do
        f=$(find "$CDIR/baresip-$name/rec" -name '*-dec.wav' -size +1k 2> /dev/null | sort | sed -n "${n}p")
        [[ -n $f ]] && break
        sleep 0.1
    done
    [[ -n $f ]] || fail "$name recorded no received audio for call $n" \
        "(rec/: $(find "$CDIR/baresip-$name/rec" -type f -printf '%f '))"
    "$PY" "$INTEROP_DIR/proxy_tonecheck.py" check "$f" "$3" "$4" > "$CDIR/tone-$name-$n.txt" 2>&1 ||
        fail "$name, call $n: received audio is not ${3} Hz: $(tail -1 "$CDIR/tone-$name-$n.txt")"
}

# proxy_tones: test signals in $CDIR (8 kHz mono s16, what aufile needs for PCMU).
proxy_tones() {
    "$PY" "$INTEROP_DIR/proxy_tonecheck.py" gen "$CDIR/tone440.wav" 440 30
    "$PY" "$INTEROP_DIR/proxy_tonecheck.py" gen "$CDIR/tone1000.wav" 1000 30
}

# 6. Two baresip UAs registered with digest call each other through switchboard over UDP:
#    alice (plays 440 Hz) dials sip:bob@proxy, bob (plays 1000 Hz) auto-answers, 5 s later
#    alice hangs up. alice must have received ~1000 Hz and bob ~440 Hz.
check_proxy_baresip_udp() {
    command -v baresip > /dev/null || fail "baresip not installed (apt-get install baresip-core)"
    local port=17500
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port --users "$CDIR/users.toml"
    proxy_tones
    proxy_mk_baresip alice 17510 17530 17540 "$CDIR/tone440.wav" \
        "<sip:alice@127.0.0.1:$port>;auth_pass=secret;answermode=auto;audio_codecs=PCMU;regint=600"
    proxy_mk_baresip bob 17514 17531 17560 "$CDIR/tone1000.wav" \
        "<sip:bob@127.0.0.1:$port>;auth_pass=bobsecret;answermode=auto;audio_codecs=PCMU;regint=600"
    proxy_baresip_start alice bob
    proxy_baresip_registered alice 17530
    proxy_baresip_registered bob 17531
    proxy_baresip_call call1 17530 17531 "sip:bob@127.0.0.1:$port" 5
    # The signalling went through the proxy, Record-Routed, both ways.
    local h='127\.0\.0\.1'
    proxy_bs_saw alice "^UDP $h:17510 -> $h:$port \| INVITE sip:bob@$h:$port " \
        "INVITE not sent to the proxy"
    proxy_bs_saw bob "^UDP $h:$port -> $h:17514 \| INVITE sip:bob-[^@]*@$h:17514 " \
        "INVITE not received from the proxy"
    proxy_bs_saw alice "^UDP $h:17510 -> $h:$port \| BYE sip:bob-[^@]*@$h:17514 " \
        "BYE not sent to the proxy (Record-Route ignored?)"
    proxy_bs_saw bob "^UDP $h:$port -> $h:17514 \| BYE " "BYE not received from the proxy"
    proxy_tone_ok alice 1 1000 440
    proxy_tone_ok bob 1 440 1000
}

# 7. As 6 with alice on TCP (;transport=tcp) and bob on UDP, calls both ways: alice dials bob
#    over TCP (the proxy forwards over UDP), then bob dials alice over UDP (the proxy forwards
#    over alice's TCP connection). Each side must hear the other's tone in both calls.
check_proxy_baresip_udp_tcp() {
    command -v baresip > /dev/null || fail "baresip not installed (apt-get install baresip-core)"
    local port=17600
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    proxy_server $port -l "127.0.0.1:$port" -t tcp --users "$CDIR/users.toml"
    wait_tcp $port "$SRV_PID" srv
    proxy_tones
    proxy_mk_baresip alice 17610 17630 17640 "$CDIR/tone440.wav" \
        "<sip:alice@127.0.0.1:$port;transport=tcp>;auth_pass=secret;answermode=auto;audio_codecs=PCMU;regint=600"
    proxy_mk_baresip bob 17614 17631 17660 "$CDIR/tone1000.wav" \
        "<sip:bob@127.0.0.1:$port>;auth_pass=bobsecret;answermode=auto;audio_codecs=PCMU;regint=600"
    proxy_baresip_start alice bob
    proxy_baresip_registered alice 17630
    proxy_baresip_registered bob 17631
    # baresip adds ;transport=tcp to what alice dials (her account is on TCP).
    proxy_baresip_call call1 17630 17631 "sip:bob@127.0.0.1:$port" 5
    proxy_baresip_call call2 17631 17630 "sip:alice@127.0.0.1:$port" 5
    local h='127\.0\.0\.1'
    # call 1: alice --TCP--> proxy --UDP--> bob; alice's BYE takes the same path.
    proxy_bs_saw alice "^TCP $h:[0-9]+ -> $h:$port \| INVITE sip:bob@$h:$port;transport=tcp " \
        "INVITE to bob not sent over TCP"
    proxy_bs_saw bob "^UDP $h:$port -> $h:17614 \| INVITE sip:bob-" \
        "INVITE not received from the proxy over UDP"
    proxy_bs_saw bob "^UDP $h:$port -> $h:17614 \| BYE sip:bob-" \
        "alice's BYE not received from the proxy over UDP"
    # call 2: bob --UDP--> proxy --TCP (alice's registration connection)--> alice.
    proxy_bs_saw bob "^UDP $h:17614 -> $h:$port \| INVITE sip:alice@$h:$port " \
        "INVITE to alice not sent over UDP"
    proxy_bs_saw alice "^TCP $h:$port -> $h:[0-9]+ \| INVITE sip:alice-[^@]*@$h:17610;transport=tcp " \
        "INVITE not received from the proxy over TCP"
    proxy_bs_saw alice "^TCP $h:$port -> $h:[0-9]+ \| BYE sip:alice-" \
        "bob's BYE not received from the proxy over TCP"
    proxy_tone_ok alice 1 1000 440
    proxy_tone_ok bob 1 440 1000
    proxy_tone_ok alice 2 1000 440
    proxy_tone_ok bob 2 440 1000
}

# 11. A stalled server rides out its backlog: sipd is stopped (SIGSTOP) for 1.6 s while the
#     UAC sends its INVITE, so the INVITE and sipp's retransmissions wait in the receive queue
#     (the kernel stamps them). The overload protection must not refuse the call (the delay
#     did not last a second of serving), the retransmissions are answered from the
#     transaction, and the UAS gets the INVITE once.
check_proxy_stall() {
    local port=16500 n
    proxy_new_cid
    proxy_server $port
    proxy_sipp uas 16510 $port proxy_uas_answer.xml -s bob
    local uas=$LAST_PID
    proxy_wait_registered uas "$uas"
    kill -STOP "$SRV_PID"
    proxy_sipp uac 16520 $port proxy_uac_call.xml -s bob -d 300
    local uac=$LAST_PID
    sleep 1.6
    kill -CONT "$SRV_PID"
    proxy_wait "$uac" uac
    proxy_wait "$uas" uas
    n=$(proxy_count "$CDIR/uac.msg" sent '^INVITE ')
    [[ $n -ge 2 ]] || fail "sipp sent the INVITE $n times during the stall (no retransmission queued)"
    [[ $(proxy_count "$CDIR/uac.msg" received '^SIP/2\.0 503') -eq 0 ]] ||
        fail "the UAC got 503 after a passing stall"
    n=$(proxy_count "$CDIR/uas.msg" received '^INVITE ')
    [[ $n -eq 1 ]] || fail "the UAS got the INVITE $n times (retransmissions not absorbed)"
}
