# shellcheck shell=bash
# Checks driven by sipp and raw sockets (sourced by run.sh). Ports: 15080, 15100-15199.

# 1. sipp REGISTER, MD5 digest with qop=auth -> 200 (sipp only does MD5 and answers the
#    first WWW-Authenticate, so that one must be MD5).
check_reg_digest_md5_qop() {
    local port=15100 chal first auth c
    SIPP_PORT=15101
    write_users "$CDIR/users.toml" alice=secret
    start_server srv -l "127.0.0.1:$port" -t udp --users "$CDIR/users.toml" --data "$CDIR/data"
    wait_udp "$port"
    sipp_run reg "$port" reg_auth.xml -inf "$SIPP_DIR/users.csv" || fail "$(sipp_why reg)"
    chal=$(received_msg "$CDIR/reg.msg" 401 | grep -i '^WWW-Authenticate:' || true)
    first=$(sed -n 1p <<< "$chal")
    [[ -n $first ]] || fail "401 without WWW-Authenticate"
    [[ ${first,,} =~ algorithm=md5([,[:space:]]|$) || ${first,,} != *algorithm=* ]] ||
        fail "first challenge is not MD5: $first"
    [[ $first =~ qop=\"[^\"]*auth ]] || fail "first challenge offers no qop=\"auth\": $first"
    auth=$(sent_msg "$CDIR/reg.msg" 2 | grep -i '^Authorization:' || true)
    [[ $auth == *qop=auth* && $auth == *cnonce=* && $auth == *nc=* ]] ||
        fail "sipp did not answer with qop=auth (test bug?): $auth"
    c=$(query_contacts query "$port" alice 127.0.0.1 -au alice -ap secret) || exit 1
    grep -q '<sip:alice@127\.0\.0\.1:15101>' <<< "$c" ||
        fail "binding missing after 200: query lists '${c//$'\n'/ | }'"
}

# 2. Same against a --no-qop server: RFC 2069-style challenge and answer -> 200.
check_reg_digest_no_qop() {
    local port=15110 chal auth
    SIPP_PORT=15111
    write_users "$CDIR/users.toml" alice=secret
    start_server srv -l "127.0.0.1:$port" -t udp --users "$CDIR/users.toml" --no-qop --data "$CDIR/data"
    wait_udp "$port"
    sipp_run reg "$port" reg_auth.xml -inf "$SIPP_DIR/users.csv" || fail "$(sipp_why reg)"
    chal=$(received_msg "$CDIR/reg.msg" 401 | grep -i '^WWW-Authenticate:' || true)
    [[ -n $chal ]] || fail "401 without WWW-Authenticate"
    [[ ${chal,,} != *qop* ]] || fail "--no-qop server still offers qop: ${chal//$'\n'/ | }"
    auth=$(sent_msg "$CDIR/reg.msg" 2 | grep -i '^Authorization:' || true)
    [[ $auth != *qop* ]] || fail "sipp answered with qop although none was offered: $auth"
}

# 3. Wrong password, unknown user, and a valid user registering someone else's AOR -> 403
#    (each after a 401). users_bad.csv: AOR user; password; auth user.
check_reg_forbidden() {
    local port=15120 n
    SIPP_PORT=15121
    write_users "$CDIR/users.toml" alice=secret bob=bobpw
    start_server srv -l "127.0.0.1:$port" -t udp --users "$CDIR/users.toml" --data "$CDIR/data"
    wait_udp "$port"
    sipp_run reg "$port" reg_auth_forbidden.xml -inf "$SIPP_DIR/users_bad.csv" -m 3 ||
        fail "$(sipp_why reg)"
    n=$(grep -c '^SIP/2.0 403' "$CDIR/reg.msg" || true)
    [[ $n -eq 3 ]] || fail "expected 3 responses 403, got $n"
    c=$(query_contacts query "$port" alice 127.0.0.1 -au alice -ap secret) || exit 1
    [[ -z $c ]] || fail "a refused REGISTER left a binding: ${c//$'\n'/ | }"
}

# 4. -r example.com: alice@example.com registers (200); alice@other.example gets
#    "403 Unknown Domain" without being challenged.
check_reg_unknown_domain() {
    local port=15130 st
    SIPP_PORT=15131
    write_users "$CDIR/users.toml" alice=secret
    start_server srv -l "127.0.0.1:$port" -t udp -r example.com --users "$CDIR/users.toml" --data "$CDIR/data"
    wait_udp "$port"
    sipp_run hosted "$port" reg_contact.xml -key user alice -key domain example.com \
        -key contact sip:alice@127.0.0.1:15131 -key expires 600 -au alice -ap secret ||
        fail "hosted domain: $(sipp_why hosted)"
    sipp_run other "$port" reg_403.xml -key user alice -key domain other.example \
        -key contact sip:alice@127.0.0.1:15131 || fail "unknown domain: $(sipp_why other)"
    st=$(grep -m1 '^SIP/2.0 403' "$CDIR/other.msg" | tr -d '\r')
    [[ ${st,,} == *"unknown domain"* ]] || fail "403 reason is not 'Unknown Domain': $st"
}

# 5. Open registration (loopback): two contacts; expires=0 on one removes only it;
#    "Contact: *" + "Expires: 0" removes the rest; the query's 200 then has no Contact.
check_unregister() {
    local port=15140 c
    SIPP_PORT=15141
    start_server srv -l "127.0.0.1:$port" -t udp --data "$CDIR/data"
    wait_udp "$port"
    local reg=(-key user dave -key domain 127.0.0.1 -key expires 600)
    sipp_run reg1 "$port" reg_contact.xml "${reg[@]}" -key contact sip:dave@127.0.0.1:15901 ||
        fail "$(sipp_why reg1)"
    sipp_run reg2 "$port" reg_contact.xml "${reg[@]}" -key contact sip:dave@127.0.0.1:15902 ||
        fail "$(sipp_why reg2)"
    c=$(contacts_of "$(received_msg "$CDIR/reg2.msg" 200)")
    [[ $(grep -c . <<< "$c") -eq 2 ]] || fail "200 for the 2nd contact should list 2 Contact lines: ${c//$'\n'/ | }"
    grep -qE '^<sip:dave@127\.0\.0\.1:15901>;expires=[0-9]+' <<< "$c" ||
        fail "200 does not list <sip:dave@127.0.0.1:15901>;expires=N: ${c//$'\n'/ | }"

    sipp_run unreg1 "$port" reg_contact.xml -key user dave -key domain 127.0.0.1 -key expires 0 \
        -key contact sip:dave@127.0.0.1:15901 || fail "$(sipp_why unreg1)"
    c=$(query_contacts query1 "$port" dave 127.0.0.1) || exit 1
    [[ $c == '<sip:dave@127.0.0.1:15902>;expires='* && $(grep -c . <<< "$c") -eq 1 ]] ||
        fail "after expires=0 on :15901 the query should list only :15902, got: ${c//$'\n'/ | }"

    sipp_run star "$port" reg_star.xml -key user dave -key domain 127.0.0.1 || fail "$(sipp_why star)"
    sipp_run query2 "$port" reg_query_empty.xml -key user dave -key domain 127.0.0.1 ||
        fail "after Contact: * the query still lists: $(contacts_of "$(received_msg "$CDIR/query2.msg" 200)" | tr '\n' ' ')"
}

# 6. A binding survives SIGTERM and a restart with the same --data.
check_restart_persistence() {
    local port=15150 c first
    SIPP_PORT=15151
    write_users "$CDIR/users.toml" alice=secret
    local args=(-l "127.0.0.1:$port" -t udp --users "$CDIR/users.toml" --data "$CDIR/data")
    start_server srv1 "${args[@]}"
    first=$LAST_PID
    wait_udp "$port" "$first" srv1
    sipp_run reg "$port" reg_contact.xml -key user alice -key domain 127.0.0.1 -key expires 600 \
        -key contact sip:alice@127.0.0.1:15999 -au alice -ap secret || fail "$(sipp_why reg)"
    stop_server "$first" srv1
    start_server srv2 "${args[@]}"
    wait_udp "$port" "$LAST_PID" srv2
    c=$(query_contacts query "$port" alice 127.0.0.1 -au alice -ap secret) || exit 1
    [[ $c =~ ^\<sip:alice@127\.0\.0\.1:15999\>\;expires=([0-9]+) ]] ||
        fail "after restart the query lists '${c//$'\n'/ | }' instead of <sip:alice@127.0.0.1:15999>"
    local left=${BASH_REMATCH[1]}
    ((left > 500 && left <= 600)) || fail "after restart the binding has expires=$left (registered for 600 s)"
}

# 7. Expiry bounds: below --min-expires -> 423 with Min-Expires (and nothing stored);
#    exactly the minimum is accepted; above --max-expires is granted max-expires.
check_expiry_bounds() {
    local port=15160 c
    SIPP_PORT=15161
    write_users "$CDIR/users.toml" alice=secret
    start_server srv -l "127.0.0.1:$port" -t udp --users "$CDIR/users.toml" \
        --min-expires 120 --max-expires 900 --data "$CDIR/data"
    wait_udp "$port"
    local who=(-key user alice -key domain 127.0.0.1 -key contact sip:alice@127.0.0.1:15161 -au alice -ap secret)
    sipp_run brief "$port" reg_423.xml "${who[@]}" -key expires 30 || fail "$(sipp_why brief)"
    grep -q '^min-expires=120\b' "$CDIR/brief.log" ||
        fail "423 Min-Expires is not 120: $(grep -i '^Min-Expires' "$CDIR/brief.msg" | tr -d '\r')"
    c=$(query_contacts query1 "$port" alice 127.0.0.1 -au alice -ap secret) || exit 1
    [[ -z $c ]] || fail "the 423'd REGISTER left a binding: ${c//$'\n'/ | }"
    sipp_run atmin "$port" reg_contact.xml "${who[@]}" -key expires 120 || fail "expires=120: $(sipp_why atmin)"
    sipp_run long "$port" reg_contact.xml "${who[@]}" -key expires 7200 || fail "expires=7200: $(sipp_why long)"
    c=$(contacts_of "$(received_msg "$CDIR/long.msg" 200)")
    [[ $c =~ expires=([0-9]+) ]] || fail "200 lists no expires: $c"
    ((BASH_REMATCH[1] <= 900 && BASH_REMATCH[1] > 800)) ||
        fail "asked 7200 s with --max-expires 900, granted ${BASH_REMATCH[1]}"
}

# 10. Bad input over the wire: garbage is ignored, a bad Max-Forwards gets a 400 that says
#     so, an oversized UDP request gets 513, and the server keeps answering (UDP and TCP).
check_bad_input() {
    local port=15170 st pid
    start_server srv -l "127.0.0.1:$port" -t udp -l "127.0.0.1:$port" -t tcp --data "$CDIR/data"
    pid=$LAST_PID
    wait_udp "$port"
    wire() { timeout 10 "$PY" "$INTEROP_DIR/sipwire.py" "$@" 2>> "$CDIR/sipwire.err" || true; }

    st=$(wire --timeout 1 127.0.0.1 "$port" garbage)
    [[ $st == "NO RESPONSE" || $st == "SIP/2.0 400"* ]] || fail "garbage datagram answered: $st"
    st=$(wire 127.0.0.1 "$port" bad-maxfwd)
    [[ $st == "SIP/2.0 400 "* ]] || fail "Max-Forwards: lots over UDP: expected 400, got: $st"
    [[ ${st,,} == *max-forwards* ]] || fail "400 reason does not name Max-Forwards: $st"
    st=$(wire 127.0.0.1 "$port" big)
    [[ $st == "SIP/2.0 513"* ]] || fail "9 KiB UDP request: expected 513, got: $st"
    st=$(wire 127.0.0.1 "$port" options)
    [[ $st == "SIP/2.0 200"* ]] || fail "OPTIONS after bad input over UDP: $st"

    st=$(wire --tcp 127.0.0.1 "$port" bad-maxfwd)
    [[ $st == "SIP/2.0 400 "* && ${st,,} == *max-forwards* ]] || fail "Max-Forwards: lots over TCP: $st"
    st=$(wire --tcp 127.0.0.1 "$port" options)
    [[ $st == "SIP/2.0 200"* ]] || fail "OPTIONS after bad input over TCP: $st"
    kill -0 "$pid" 2> /dev/null || fail "server died"
}

# 11. Open registration on a non-loopback address is refused at startup.
check_refuse_open_public() {
    local rc=0
    timeout 10 "$SWITCHBOARD" sipd -l 0.0.0.0:15080 -t udp --data "$CDIR/data" \
        > "$CDIR/srv.out" 2> "$CDIR/srv.err" < /dev/null || rc=$?
    [[ $rc -ne 124 ]] || fail "still running after 10 s: it should refuse to start"
    [[ $rc -ne 0 ]] || fail "exited with status 0"
    grep -q -- '--users' "$CDIR/srv.err" ||
        fail "stderr does not mention --users: $(head -c 300 "$CDIR/srv.err" | tr '\n' ' ')"
}
