# shellcheck shell=bash
# RFC 3263 server location through a real DNS server (dnsmasq): the proxy finds the
# callee's server for a domain from its SRV record. Ports 15900-15949.

check_proxy_dns_srv() {
    command -v dnsmasq > /dev/null || fail "dnsmasq not installed (apt-get install dnsmasq-base)"
    local dns=15900 sip=15910 uas=15920 uac=15930
    # voip.test: only an SRV record says where its SIP server is (port 15920).
    spawn dns dnsmasq --no-daemon --no-resolv --no-hosts --conf-file=/dev/null \
        --bind-interfaces --listen-address=127.0.0.1 --port=$dns --pid-file= --local=/test/ \
        --host-record=sip-server.voip.test,127.0.0.1 \
        --srv-host=_sip._udp.voip.test,sip-server.voip.test,$uas,10,50
    start_server srv -l 127.0.0.1:$sip -t udp --data "$CDIR/data" --dns 127.0.0.1:$dns
    local srv=$LAST_PID
    wait_udp $sip "$srv" srv
    spawn uas timeout 30 sipp -sn uas -i 127.0.0.1 -p $uas -m 1 -nostdin -timeout 20s \
        -trace_msg -message_file "$CDIR/uas.msg"
    local uas_pid=$LAST_PID
    sleep 0.3
    SIPP_PORT=$uac sipp_run uac $sip dns_uac.xml -s bob -set domain voip.test ||
        fail "$(sipp_why uac)"
    wait "$uas_pid" || fail "sipp UAS did not complete the call (see uas.msg)"
    grep -q '^INVITE sip:bob@voip.test SIP/2.0' "$CDIR/uas.msg" ||
        fail "the UAS at the SRV target did not receive INVITE sip:bob@voip.test"
    grep -q '^BYE ' "$CDIR/uas.msg" || fail "the BYE did not reach the UAS"
}
