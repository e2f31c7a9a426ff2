use std::time::{Duration, Instant};

use registrar::{MemoryLocations, Registrar, RegistrarConfig};
use sip::transaction::Flow;
use sip::{HeaderName, Message, Transport};

use super::*;

fn udp() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: "127.0.0.1:40000".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
    }
}

fn server() -> (Sipd<MemoryLocations>, Instant) {
    // One anchor; the tests then move time by arithmetic only.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let reg = Registrar::new(RegistrarConfig::default(), None, MemoryLocations::new(), 3);
    let listener = |transport, addr: &str| proxy::Listener {
        transport,
        addr: addr.parse().unwrap(),
    };
    let local = proxy::Local {
        listeners: vec![
            listener(Transport::Udp, "127.0.0.1:5060"),
            listener(Transport::Tcp, "127.0.0.1:5060"),
            listener(Transport::Ws, "127.0.0.1:8080"),
        ],
        domains: vec![],
    };
    let p = proxy::Proxy::new(proxy::ProxyConfig::default(), local, 5);
    (
        Sipd::new(SipdConfig::default(), reg, p, now, 1_800_000_000),
        now,
    )
}

fn drain(s: &mut Sipd<MemoryLocations>) -> Vec<Message> {
    let mut v = Vec::new();
    while let Some(t) = s.poll_transmit() {
        v.push(Message::parse(&t.bytes).unwrap());
    }
    v
}

const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;rport;branch=z9hG4bKreg1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:40000>\r\nExpires: 300\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

#[test]
fn register_over_udp_and_retransmission() {
    let (mut s, now) = server();
    s.handle_message(now, REGISTER.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.code(), Some(200));
    assert_eq!(r.top_via().unwrap().rport(), Some(Some(40000)));
    assert_eq!(r.top_via().unwrap().received(), Some("127.0.0.1"));
    assert!(r.header(HeaderName::Server).is_some());
    // A retransmission is answered from the transaction, not re-processed.
    s.handle_message(now + Duration::from_millis(500), REGISTER.as_bytes(), udp());
    let again = drain(&mut s);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].as_bytes(), r.as_bytes());
    assert_eq!(s.counters().registers, 1);
    assert_eq!(s.counters().retransmissions, 1);
}

#[test]
fn bad_input_gets_clear_answers() {
    let (mut s, now) = server();
    // Garbage: dropped silently and counted.
    s.handle_message(now, b"\x00\x01garbage", udp());
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.counters().garbage, 1);
    // A keepalive is not an error.
    s.handle_message(now, b"\r\n\r\n", udp());
    assert!(drain(&mut s).is_empty());
    // Missing CSeq after a valid framing: 400 saying what is wrong? CSeq is needed to
    // answer at all, so such a request is dropped; a bad Max-Forwards is answered.
    let bad_mf = REGISTER.replace("Max-Forwards: 70", "Max-Forwards: lots");
    s.handle_message(now, bad_mf.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(400));
    assert_eq!(out[0].reason(), "Bad Max-Forwards header");
    // Unparseable Content-Length: salvaged 400.
    let bad_cl = REGISTER.replace("Content-Length: 0", "Content-Length: x");
    s.handle_message(now, bad_cl.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(400));
    assert_eq!(out[0].reason(), "Bad Content-Length");
    // Oversized over UDP: 513.
    let big = REGISTER.replace(
        "Max-Forwards: 70",
        &format!("X-Pad: {}\r\nMax-Forwards: 70", "a".repeat(9000)),
    );
    s.handle_message(now, big.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(513));
    // Responses that match nothing are dropped.
    s.handle_message(now, b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", udp());
    assert!(drain(&mut s).is_empty());
}

#[test]
fn options_invite_cancel() {
    let (mut s, now) = server();
    let options = REGISTER
        .replace("REGISTER sip:example.com", "OPTIONS sip:127.0.0.1")
        .replace("1 REGISTER", "1 OPTIONS");
    s.handle_message(now, options.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(200));
    assert_eq!(out[0].header(HeaderName::Allow), Some(ALLOW));
    let invite = REGISTER
        .replace("REGISTER sip:example.com", "INVITE sip:bob@127.0.0.1")
        .replace("1 REGISTER", "1 INVITE")
        .replace("z9hG4bKreg1", "z9hG4bKinv1");
    s.handle_message(now, invite.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(
        out.iter().map(|m| m.code().unwrap()).collect::<Vec<_>>(),
        vec![100, 480]
    );
    // The INVITE again: its transaction (Completed) re-sends the 480, nothing else runs.
    s.handle_message(now + Duration::from_millis(500), invite.as_bytes(), udp());
    let again = drain(&mut s);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].as_bytes(), out[1].as_bytes());
    assert_eq!(s.counters().retransmissions, 1);
    let cancel = REGISTER
        .replace("REGISTER sip:example.com", "CANCEL sip:bob@example.com")
        .replace("1 REGISTER", "1 CANCEL")
        .replace("z9hG4bKreg1", "z9hG4bKnomatch");
    s.handle_message(now, cancel.as_bytes(), udp());
    assert_eq!(drain(&mut s)[0].code(), Some(481));
    let zero = invite
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .replace("z9hG4bKinv1", "z9hG4bKinv2");
    s.handle_message(now, zero.as_bytes(), udp());
    assert_eq!(drain(&mut s).last().unwrap().code(), Some(483));
    let tel = invite
        .replace("INVITE sip:bob@127.0.0.1", "INVITE tel:+15551234")
        .replace("z9hG4bKinv1", "z9hG4bKinv3");
    s.handle_message(now, tel.as_bytes(), udp());
    assert_eq!(drain(&mut s).last().unwrap().code(), Some(416));
}

#[test]
fn websocket_binding_dropped_on_close() {
    let (mut s, now) = server();
    let ws = Flow {
        transport: Transport::Ws,
        conn: Some(42),
        ..udp()
    };
    let reg = REGISTER
        .replace(
            "SIP/2.0/UDP 127.0.0.1:40000;rport",
            "SIP/2.0/WS df7jal23ls0d.invalid",
        )
        .replace(
            "<sip:alice@127.0.0.1:40000>",
            "<sip:x1@df7jal23ls0d.invalid;transport=ws>",
        );
    s.handle_message(now, reg.as_bytes(), ws);
    assert_eq!(drain(&mut s)[0].code(), Some(200));
    let unix = s.unix_time(now);
    assert_eq!(s.registrar().lookup("sip:alice@example.com", unix).len(), 1);
    s.connection_closed(now, 42);
    assert!(
        s.registrar()
            .lookup("sip:alice@example.com", unix)
            .is_empty()
    );
}

#[test]
fn purge_runs_on_timer() {
    let (mut s, now) = server();
    s.handle_message(now, REGISTER.as_bytes(), udp());
    drain(&mut s);
    let deadline = s.poll_timeout().unwrap();
    assert!(deadline <= now + Duration::from_secs(30));
    let later = now + Duration::from_secs(400);
    s.handle_timeout(later);
    assert_eq!(s.registrar().locations().count().unwrap(), 0);
}

fn udp_from(port: u16) -> Flow {
    Flow {
        remote: format!("127.0.0.1:{port}").parse().unwrap(),
        ..udp()
    }
}

fn drain_flows(s: &mut Sipd<MemoryLocations>) -> Vec<(Flow, Message)> {
    let mut v = Vec::new();
    while let Some(t) = s.poll_transmit() {
        v.push((t.flow, Message::parse(&t.bytes).unwrap()));
    }
    v
}

fn register_contact(
    s: &mut Sipd<MemoryLocations>,
    now: Instant,
    user: &str,
    contact: &str,
    from_port: u16,
) {
    let reg = REGISTER
        .replace("<sip:alice@127.0.0.1:40000>", contact)
        .replace("alice@example.com", &format!("{user}@127.0.0.1"))
        .replace(&format!("<sip:{user}@127.0.0.1:40000>"), contact)
        .replace("z9hG4bKreg1", &format!("z9hG4bKreg{user}{from_port}"));
    s.handle_message(now, reg.as_bytes(), udp_from(from_port));
    assert_eq!(drain(s)[0].code(), Some(200));
}

const INVITE: &str = "INVITE sip:uas@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:16092;branch=z9hG4bK-10595-1-0\r\nFrom: sipp <sip:sipp@127.0.0.1:16092>;tag=10595SIPpTag001\r\nTo: uas <sip:uas@127.0.0.1:5060>\r\nCall-ID: 1-10595@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: sip:sipp@127.0.0.1:16092\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0";

/// The callee's answer to a forwarded request, sipp style (all Vias on one line).
fn answer(req: &Message, code: u16, reason: &str, tag: &str) -> String {
    let vias: Vec<&str> = req.values(HeaderName::Via).collect();
    format!(
        "SIP/2.0 {code} {reason}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={tag}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:127.0.0.1:16090>\r\nContent-Length: 0\r\n\r\n",
        vias.join(", "),
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.call_id().unwrap(),
        req.header(HeaderName::CSeq).unwrap()
    )
}

#[test]
fn proxies_a_call_to_a_registered_contact() {
    let (mut s, now) = server();
    register_contact(&mut s, now, "uas", "<sip:uas@127.0.0.1:16090>", 16091);
    s.handle_message(now, INVITE.as_bytes(), udp_from(16092));
    let out = drain_flows(&mut s);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1.code(), Some(100));
    let (flow, fwd) = &out[1];
    assert!(fwd.is_request(), "{fwd:?}");
    assert_eq!(flow.remote, "127.0.0.1:16090".parse().unwrap());
    assert_eq!(fwd.uri_str(), "sip:uas@127.0.0.1:16090");
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    assert_eq!(fwd.vias().unwrap().len(), 2);
    assert_eq!(
        fwd.header(HeaderName::RecordRoute),
        Some("<sip:127.0.0.1:5060;lr>")
    );
    assert_eq!(fwd.body(), b"v=0");
    // 180 and 200 travel back to the caller without our Via.
    for (code, reason) in [(180, "Ringing"), (200, "OK")] {
        s.handle_message(
            now,
            answer(fwd, code, reason, "uas1").as_bytes(),
            udp_from(16090),
        );
        let back = drain_flows(&mut s);
        assert_eq!(back.len(), 1, "{code}: {back:?}");
        assert_eq!(back[0].0.remote, "127.0.0.1:16092".parse().unwrap());
        assert_eq!(back[0].1.code(), Some(code));
        assert_eq!(back[0].1.vias().unwrap().len(), 1);
    }
}

// ---- seed-spec §8 items 24 and 25 (docs/conformance.md) ----

/// [`server`] hosting only `domains` (`-r`).
fn server_for(domains: &[&str]) -> (Sipd<MemoryLocations>, Instant) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let rc = RegistrarConfig {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        ..RegistrarConfig::default()
    };
    let reg = Registrar::new(rc, None, MemoryLocations::new(), 3);
    let local = proxy::Local {
        listeners: vec![proxy::Listener {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap(),
        }],
        domains: domains.iter().map(|d| d.to_string()).collect(),
    };
    let p = proxy::Proxy::new(proxy::ProxyConfig::default(), local, 5);
    (
        Sipd::new(SipdConfig::default(), reg, p, now, 1_800_000_000),
        now,
    )
}

/// §8.24 registrar. Ours (docs/compatibility.md): third-party REGISTER gets `403
/// Third-party registration not allowed` (the seed's 401 invites a retry that cannot
/// succeed), and `-r` checks the To domain (the AOR being bound), not From.
#[test]
fn seed_8_24_registrar_rules() {
    let (mut s, now) = server();
    let third = REGISTER
        .replace("To: <sip:alice@example.com>", "To: <sip:bob@example.com>")
        .replace("z9hG4bKreg1", "z9hG4bKreg3p");
    s.handle_message(now, third.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(403));
    assert_eq!(out[0].reason(), "Third-party registration not allowed");

    // Two contacts, no Expires in the request: the 200 lists both with `;expires=` and
    // carries the default Expires 3600.
    let first = REGISTER.replace("Expires: 300\r\n", "");
    s.handle_message(now, first.as_bytes(), udp());
    assert_eq!(drain(&mut s)[0].code(), Some(200));
    let second = first
        .replace("<sip:alice@127.0.0.1:40000>", "<sip:alice@127.0.0.1:40002>")
        .replace("CSeq: 1 ", "CSeq: 2 ")
        .replace("z9hG4bKreg1", "z9hG4bKreg2");
    s.handle_message(now, second.as_bytes(), udp());
    let ok = &drain(&mut s)[0];
    assert_eq!(ok.code(), Some(200));
    let contacts = ok.contacts().unwrap();
    assert_eq!(contacts.len(), 2, "{ok:?}");
    for c in &contacts {
        let sip::Contact::Addr(a) = c else {
            panic!("{c:?}")
        };
        let exp = a
            .params
            .iter()
            .find(|p| p.name == "expires")
            .and_then(|p| p.value.as_deref());
        assert_eq!(exp, Some("3600"), "{c:?}");
    }
    assert_eq!(ok.expires().unwrap(), Some(3600));

    // Expires: 0 removes that contact only.
    let remove = REGISTER
        .replace("Expires: 300", "Expires: 0")
        .replace("CSeq: 1 ", "CSeq: 3 ")
        .replace("z9hG4bKreg1", "z9hG4bKreg0");
    s.handle_message(now, remove.as_bytes(), udp());
    let ok = &drain(&mut s)[0];
    assert_eq!(ok.code(), Some(200));
    let unix = s.unix_time(now);
    let left = s.registrar().lookup("sip:alice@example.com", unix);
    assert_eq!(left.len(), 1);
    assert!(left[0].contact.contains("40002"), "{left:?}");

    // -r example.com: a REGISTER for other.org → 403 Unknown Domain.
    let (mut s, now) = server_for(&["example.com"]);
    let other = REGISTER
        .replace("sip:example.com", "sip:other.org")
        .replace("alice@example.com", "alice@other.org");
    s.handle_message(now, other.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(403));
    assert_eq!(out[0].reason(), "Unknown Domain");
}

/// §8.25 proxy: forking to every contact with Record-Route and Max-Forwards − 1; 480 for
/// an unknown AOR; 483 for Max-Forwards 0; 513 above 8192 bytes (UDP); a sipsak OPTIONS
/// gets 200.
#[test]
fn seed_8_25_proxy_rules() {
    let (mut s, now) = server();
    register_contact(&mut s, now, "uas", "<sip:uas@127.0.0.1:16090>", 16091);
    register_contact(&mut s, now, "uas", "<sip:uas@127.0.0.1:16094>", 16095);
    s.handle_message(now, INVITE.as_bytes(), udp_from(16092));
    let out = drain_flows(&mut s);
    let forwarded: Vec<&(Flow, Message)> = out.iter().filter(|(_, m)| m.is_request()).collect();
    assert_eq!(forwarded.len(), 2, "{out:?}");
    let mut targets: Vec<String> = forwarded
        .iter()
        .map(|(f, _)| f.remote.to_string())
        .collect();
    targets.sort();
    assert_eq!(targets, ["127.0.0.1:16090", "127.0.0.1:16094"]);
    for (_, fwd) in forwarded {
        assert_eq!(fwd.max_forwards().unwrap(), Some(69));
        assert_eq!(
            fwd.header(HeaderName::RecordRoute),
            Some("<sip:127.0.0.1:5060;lr>")
        );
    }

    let unknown = INVITE
        .replace("sip:uas@127.0.0.1:5060", "sip:nobody@127.0.0.1:5060")
        .replace("z9hG4bK-10595-1-0", "z9hG4bK-unknown");
    s.handle_message(now, unknown.as_bytes(), udp_from(16092));
    let last = drain(&mut s).pop().unwrap();
    assert_eq!(
        (last.code(), last.reason()),
        (Some(480), "Temporarily Unavailable")
    );

    let zero = INVITE
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .replace("z9hG4bK-10595-1-0", "z9hG4bK-mf0");
    s.handle_message(now, zero.as_bytes(), udp_from(16092));
    let last = drain(&mut s).pop().unwrap();
    assert_eq!((last.code(), last.reason()), (Some(483), "Too Many Hops"));

    let big = INVITE
        .replace(
            "Max-Forwards: 70",
            &format!("X-Pad: {}\r\nMax-Forwards: 70", "a".repeat(8300)),
        )
        .replace("z9hG4bK-10595-1-0", "z9hG4bK-big");
    s.handle_message(now, big.as_bytes(), udp_from(16092));
    let last = drain(&mut s).pop().unwrap();
    assert_eq!(last.code(), Some(513));

    let sipsak = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKsak\r\nFrom: sipsak <sip:sipsak@127.0.0.1:40000>;tag=s1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: sak1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:sipsak@127.0.0.1:40000>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    s.handle_message(now, sipsak.as_bytes(), udp());
    assert_eq!(drain(&mut s)[0].code(), Some(200));
}

#[test]
fn overload_refuses_new_calls_and_serves_the_rest() {
    let (mut s, now) = server();
    let invite = REGISTER
        .replace("REGISTER sip:example.com", "INVITE sip:bob@127.0.0.1")
        .replace("1 REGISTER", "1 INVITE")
        .replace("z9hG4bKreg1", "z9hG4bKinv1");
    // A stall: late, but new calls are still taken.
    s.set_queue_delay(Duration::from_millis(400));
    s.handle_message(now, invite.as_bytes(), udp());
    let codes: Vec<u16> = drain(&mut s).iter().filter_map(|m| m.code()).collect();
    assert_eq!(codes, vec![100, 480]);
    // Still behind a second later: overloaded.
    let now = now + OVERLOAD_SUSTAIN;
    let invite = invite.replace("z9hG4bKinv1", "z9hG4bKinv0");
    s.handle_message(now, invite.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].code(), Some(503));
    assert_eq!(out[0].header_by_name("Retry-After"), Some("5"));
    assert_eq!(s.counters().shed, 1);
    // Its ACK (To tag of the 503) ends here: nothing is forwarded.
    let tag = out[0].to().unwrap().tag().unwrap().to_string();
    let ack = |tag: &str| {
        invite
            .replace("INVITE sip:bob@127.0.0.1", "ACK sip:bob@192.0.2.7:5060")
            .replace("1 INVITE", "1 ACK")
            .replace(
                "To: <sip:alice@example.com>",
                &format!("To: <sip:alice@example.com>;tag={tag}"),
            )
    };
    s.handle_message(now, ack(&tag).as_bytes(), udp());
    assert!(drain(&mut s).is_empty());
    // (An ACK with someone else's tag, for a 2xx, is relayed to its target.)
    s.handle_message(now, ack("far-end-tag").as_bytes(), udp());
    assert_eq!(drain(&mut s).len(), 1);
    // Registrations and requests inside a dialog are still served.
    s.handle_message(now, REGISTER.as_bytes(), udp());
    assert_eq!(drain(&mut s)[0].code(), Some(200));
    let bye = invite
        .replace("INVITE sip:bob@127.0.0.1", "BYE sip:bob@127.0.0.1")
        .replace("1 INVITE", "2 BYE")
        .replace(
            "To: <sip:alice@example.com>",
            "To: <sip:alice@example.com>;tag=9",
        )
        .replace("z9hG4bKinv1", "z9hG4bKbye1");
    s.handle_message(now, bye.as_bytes(), udp());
    assert_ne!(drain(&mut s).last().and_then(|m| m.code()), Some(503));
    // Once the queue drains, new calls are taken again.
    s.set_queue_delay(Duration::from_millis(5));
    let invite2 = invite.replace("z9hG4bKinv1", "z9hG4bKinv2");
    s.handle_message(now, invite2.as_bytes(), udp());
    let codes: Vec<u16> = drain(&mut s).iter().filter_map(|m| m.code()).collect();
    assert_eq!(codes, vec![100, 480]);
    assert_eq!(s.counters().shed, 1);
}
