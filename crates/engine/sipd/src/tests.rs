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
    (
        Sipd::new(SipdConfig::default(), reg, now, 1_800_000_000),
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
        .replace("REGISTER sip:example.com", "OPTIONS sip:example.com")
        .replace("1 REGISTER", "1 OPTIONS");
    s.handle_message(now, options.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(out[0].code(), Some(200));
    assert_eq!(out[0].header(HeaderName::Allow), Some(ALLOW));
    let invite = REGISTER
        .replace("REGISTER sip:example.com", "INVITE sip:bob@example.com")
        .replace("1 REGISTER", "1 INVITE")
        .replace("z9hG4bKreg1", "z9hG4bKinv1");
    s.handle_message(now, invite.as_bytes(), udp());
    let out = drain(&mut s);
    assert_eq!(
        out.iter().map(|m| m.code().unwrap()).collect::<Vec<_>>(),
        vec![100, 501]
    );
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
        .replace("INVITE sip:bob@example.com", "INVITE tel:+15551234")
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
