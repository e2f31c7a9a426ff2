# shellcheck shell=bash
# Checks with real third-party user agents (sourced by run.sh): baresip (UDP, TCP) and
# JsSIP over WebSocket. Ports: 15200-15299 (baresip), 15300-15399 (JsSIP).

# mk_baresip NAME SIP_PORT CTRL_PORT ACCOUNT: a baresip config dir for registration only
# (no audio modules). baresip binds SIP_PORT (UDP+TCP) and SIP_PORT+1 (TLS): keep
# instances >= 2 ports apart, and CTRL_PORT away from both.
mk_baresip() {
    local dir=$CDIR/baresip-$1
    mkdir -p "$dir"
    cat > "$dir/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$2
net_interface		127.0.0.1
module_path		/usr/lib/baresip/modules
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$3
EOF
    echo "$4" > "$dir/accounts"
}

# baresip_reg CTRL_PORT: baresip's own registration status line(s) (ANSI colours removed).
baresip_reg() {
    timeout 10 "$PY" "$INTEROP_DIR/baresip_ctrl.py" cmd "$1" reginfo 2> /dev/null |
        sed -E 's/\x1b\[[0-9;]*m//g' | grep -E '^[> ] *sip:' || true
}

# 8. Four baresip UAs (alice and bob over UDP, alice and bob over TCP) register with digest
#    and stay registered across refreshes (granted 10 s, watched for 22 s).
check_baresip_udp_tcp() {
    command -v baresip > /dev/null || fail "baresip not installed (apt-get install baresip-core)"
    local port=15200 i name
    SIPP_PORT=15240
    write_users "$CDIR/users.toml" alice=secret bob=bobsecret
    start_server srv -l "127.0.0.1:$port" -t udp -l "127.0.0.1:$port" -t tcp \
        --users "$CDIR/users.toml" --min-expires 5 --max-expires 10 --data "$CDIR/data"
    local srv=$LAST_PID
    wait_udp "$port" "$srv"
    wait_tcp "$port" "$srv"

    # name  sip-port  ctrl-port  user  password  transport-suffix
    local uas=(
        "alice-udp 15210 15230 alice secret"
        "bob-udp   15212 15231 bob   bobsecret"
        "alice-tcp 15214 15232 alice secret    ;transport=tcp"
        "bob-tcp   15216 15233 bob   bobsecret ;transport=tcp"
    )
    local ua sport cport user pass tp
    for ua in "${uas[@]}"; do
        read -r name sport cport user pass tp <<< "$ua"
        mk_baresip "$name" "$sport" "$cport" \
            "<sip:$user@127.0.0.1:$port${tp:-}>;auth_pass=$pass;regint=10"
        spawn "$name" baresip -f "$CDIR/baresip-$name" -t 100
    done

    # Initial registration: every UA reports OK within 10 s.
    local pending end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        pending=
        for ua in "${uas[@]}"; do
            read -r name sport cport user pass tp <<< "$ua"
            baresip_reg "$cport" | grep -qw OK || pending+=" $name"
        done
        [[ -z $pending ]] && break
        server_died "$srv" srv
        sleep 0.2
    done
    if [[ -n $pending ]]; then
        read -r name _ <<< "$pending"
        fail "not registered after 10 s:$pending ($name says: $(grep -a 'reg:' "$CDIR/$name.out" |
            sed -E 's/\x1b\[[0-9;]*m//g' | tail -1))"
    fi

    # Watch every UA's events for 22 s: each must refresh (REGISTER_OK) and never fail.
    local watchers=()
    for ua in "${uas[@]}"; do
        read -r name sport cport user pass tp <<< "$ua"
        spawn "events-$name" timeout 30 "$PY" "$INTEROP_DIR/baresip_ctrl.py" listen "$cport" 22
        watchers+=("$LAST_PID")
    done
    for i in "${watchers[@]}"; do wait "$i" || true; done
    local oks fails
    for ua in "${uas[@]}"; do
        read -r name sport cport user pass tp <<< "$ua"
        oks=$(grep -c '"REGISTER_OK"' "$CDIR/events-$name.out" || true)
        fails=$(grep '"REGISTER_FAIL"' "$CDIR/events-$name.out" | head -1 || true)
        [[ -z $fails ]] || fail "$name: registration failed during refresh: $fails"
        ((oks >= 1)) || fail "$name: no successful re-REGISTER in 22 s (granted 10 s)"
        baresip_reg "$cport" | grep -qw OK || fail "$name not registered after 22 s: $(baresip_reg "$cport")"
    done

    # The registrar agrees: alice and bob each have their UDP and TCP contact.
    local c
    for user in alice:secret:15210:15214 bob:bobsecret:15212:15216; do
        IFS=: read -r name pass sport cport <<< "$user"
        c=$(query_contacts "query-$name" "$port" "$name" 127.0.0.1 -au "$name" -ap "$pass") || exit 1
        grep -qE "@127\.0\.0\.1:$sport(;[^>]*)?>" <<< "$c" ||
            fail "registrar has no UDP contact :$sport for $name: ${c//$'\n'/ | }"
        grep -qE "@127\.0\.0\.1:$cport;transport=tcp" <<< "$c" ||
            fail "registrar has no TCP contact :$cport;transport=tcp for $name: ${c//$'\n'/ | }"
    done
}

# jssip_up LABEL HTTP_PORT UDP_PORT: start JsSIP registering carol, wait for its 200 and
# check that the registrar (queried over UDP by sipp) lists its *.invalid;transport=ws contact.
jssip_up() {
    local label=$1 http=$2 udp=$3 c end=$((SECONDS + 10))
    spawn "$label" node "$INTEROP_DIR/jssip/register.js" "ws://127.0.0.1:$http/sip" sip:carol@127.0.0.1 carolpw 40
    JSSIP_PID=$LAST_PID
    while ((SECONDS < end)); do
        grep -q '^registered' "$CDIR/$label.out" && break
        kill -0 "$JSSIP_PID" 2> /dev/null || break
        sleep 0.2
    done
    grep -q '^registered' "$CDIR/$label.out" ||
        fail "$label: JsSIP did not register: $(tr '\n' ' ' < "$CDIR/$label.out") $(tail -2 "$CDIR/$label.err" | tr '\n' ' ')"
    c=$(query_contacts "$label-query" "$udp" carol 127.0.0.1 -au carol -ap carolpw) || exit 1
    grep -qE '^<sip:[^@>]+@[^>]+\.invalid;transport=ws>;expires=[0-9]+' <<< "$c" ||
        fail "$label: while JsSIP is registered the query lists '${c//$'\n'/ | }', no *.invalid;transport=ws contact"
}

# jssip_gone LABEL UDP_PORT: within 5 s of the socket closing, carol has no binding left.
jssip_gone() {
    local label=$1 udp=$2 i=0 c end=$((SECONDS + 6))
    while ((SECONDS < end)); do
        i=$((i + 1))
        c=$(query_contacts "$label-gone-$i" "$udp" carol 127.0.0.1 -au carol -ap carolpw) || exit 1
        [[ -z $c ]] && return 0
        sleep 0.5
    done
    fail "$label: 5 s after the WebSocket closed the binding is still listed: ${c//$'\n'/ | }"
}

# 9. JsSIP (SIP over WebSocket, RFC 7118, subprotocol "sip") registers carol with digest at
#    ws://.../sip; the registrar lists its *.invalid;transport=ws contact and drops it when
#    the WebSocket goes away, both on a clean close and when the process is killed (JsSIP
#    never un-REGISTERs).
check_jssip_websocket() {
    command -v node > /dev/null || fail "node not installed"
    local js=$INTEROP_DIR/jssip
    if [[ ! -d $js/node_modules/jssip || ! -d $js/node_modules/ws ]]; then
        (cd "$js" && timeout 120 npm ci --no-audit --no-fund) > "$CDIR/npm.log" 2>&1 ||
            fail "npm ci in tests/interop/jssip failed: $(tail -2 "$CDIR/npm.log" | tr '\n' ' ')"
    fi
    local http=15300 udp=15302 i
    SIPP_PORT=15303
    write_users "$CDIR/users.toml" carol=carolpw
    start_server srv -l "127.0.0.1:$http" -t ws -l "127.0.0.1:$udp" -t udp \
        --users "$CDIR/users.toml" --data "$CDIR/data"
    local srv=$LAST_PID
    wait_http "$http" "$srv"
    wait_udp "$udp" "$srv"

    # Clean close: WebSocket close frame (code 1000), no un-REGISTER.
    jssip_up jssip1 "$http" "$udp"
    kill -TERM "$JSSIP_PID" 2> /dev/null || true
    local end=$((SECONDS + 5))
    while ((SECONDS < end)); do
        kill -0 "$JSSIP_PID" 2> /dev/null || break
        sleep 0.1
    done
    grep -q '^closed' "$CDIR/jssip1.out" ||
        fail "JsSIP did not close its socket cleanly: $(tr '\n' ' ' < "$CDIR/jssip1.out")"
    jssip_gone clean-close "$udp"

    # Abrupt end: the process is killed, the kernel closes the TCP connection.
    jssip_up jssip2 "$http" "$udp"
    kill -KILL "$JSSIP_PID" 2> /dev/null || true
    jssip_gone killed "$udp"
    kill -0 "$srv" 2> /dev/null || fail "server died"
}
