//! Inbound calls: alerting, accept/ACK, 488 before alerting, busy, CANCEL, reject,
//! timeouts, routing to the right line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::{HeaderName, Message};
use switchboard_line::{Command, LineEvent, LineId, MediaCommand};

fn ruri(user: &str) -> String {
    format!("sip:{user}@192.0.2.1:5060;transport=udp")
}

/// Registers a line and delivers an INVITE with a PCMU offer; returns the line, the
/// INVITE and the 180.
fn ringing(h: &mut H, call_id: &str) -> (LineId, Message, Message) {
    let (line, user) = h.registered_line("alice@example.com");
    let inv = incoming_invite(&ruri(&user), call_id, &pcmu_sdp(1, &[]));
    h.recv(&inv);
    h.expect("100");
    let ring = h.expect("180");
    (line, inv, ring)
}

#[test]
fn ring_accept_ack() {
    let mut h = H::new();
    let (line, inv, ring) = ringing(&mut h, "in1");
    let tag = to_tag(&ring);
    assert!(
        ring.header(HeaderName::Contact)
            .unwrap()
            .starts_with("<sip:alice-")
    );
    assert_eq!(ring.call_id().unwrap(), "in1");
    assert_eq!(
        h.next_event(),
        (
            line,
            LineEvent::Invited {
                from: "\"Bob\" <sip:bob@example.com>".into(),
                to: "\"Alice\" <sip:alice@example.com>".into(),
            }
        )
    );
    h.assert_quiet();

    h.command(
        line,
        Command::Accept {
            codecs: vec!["wideband".into(), "pcmu".into(), "dtmf".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let (flow, ok) = h.next_sent_flow();
    assert_eq!(describe(&ok), "200");
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(to_tag(&ok), tag);
    assert_eq!(ok.vias().unwrap().len(), 2);
    assert!(ok.header(HeaderName::Contact).is_some());
    let answer = body_text(&ok);
    assert!(
        answer.contains("m=audio 40000 RTP/AVP 0 101\r\n"),
        "{answer}"
    );
    assert!(answer.contains("c=IN IP4 192.0.2.1\r\n"));
    // No media before the ACK.
    h.assert_quiet();
    // The 2xx is retransmitted until the ACK (RFC 3261 §13.3.1.4).
    h.advance(Duration::from_millis(500));
    assert_eq!(describe(&h.next_sent()), "200");
    h.advance(Duration::from_millis(1000));
    assert_eq!(describe(&h.next_sent()), "200");

    let ack = in_dialog(
        "ACK",
        "sip:alice@192.0.2.1",
        "in1",
        &tag,
        1,
        "ack1",
        &[],
        "",
    );
    h.recv(&ack);
    let MediaCommand::Start(p) = h.next_media() else {
        panic!()
    };
    assert_eq!(p.codec.pt, 0);
    assert_eq!(p.remote_rtp, addr(REMOTE_RTP));
    assert_eq!(p.telephone_event, Some(101));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Accepted(Some((Some("pcmu".into()), None))))
    );
    h.advance(Duration::from_secs(40));
    h.assert_quiet();

    // Remote BYE: 200, media stop, byed.
    let bye = in_dialog(
        "BYE",
        "sip:alice@192.0.2.1",
        "in1",
        &tag,
        2,
        "bye1",
        &[],
        "",
    );
    h.recv(&bye);
    h.expect("200");
    assert_eq!(h.next_media(), MediaCommand::Stop);
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    h.assert_quiet();
    let _ = inv;
}

#[test]
fn accept_matches_the_seed_conformance_16() {
    // accept('wideband','dtmf','flv') for an offer with speex/16000: accepted('speex', null)
    let mut h = H::new();
    let (line, user) = h.registered_line("alice@example.com");
    let offer = remote_sdp(
        1,
        "198.51.100.7",
        "97 101",
        &[
            "a=rtpmap:97 SPEEX/16000",
            "a=rtpmap:101 telephone-event/8000",
        ],
    );
    h.recv(&incoming_invite(&ruri(&user), "in16", &offer));
    h.expect("100");
    h.expect("180");
    h.next_event();
    h.command(
        line,
        Command::Accept {
            codecs: vec!["wideband".into(), "dtmf".into(), "flv".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let ok = h.expect("200");
    // The offer's payload types and order.
    assert!(body_text(&ok).contains("m=audio 40000 RTP/AVP 97 101\r\n"));
    h.recv(&in_dialog(
        "ACK",
        "sip:a@x",
        "in16",
        &to_tag(&ok),
        1,
        "a",
        &[],
        "",
    ));
    h.next_media();
    assert_eq!(
        h.next_event(),
        (
            line,
            LineEvent::Accepted(Some((Some("speex".into()), None)))
        )
    );
}

#[test]
fn incompatible_offer_gets_488_without_alerting() {
    let mut h = H::new();
    let (_line, user) = h.registered_line("alice@example.com");
    let g729 = remote_sdp(1, "198.51.100.7", "18", &["a=rtpmap:18 G729/8000"]);
    h.recv(&incoming_invite(&ruri(&user), "in2", &g729));
    h.expect("100");
    let r = h.expect("488");
    assert!(r.to().unwrap().tag().is_some());
    // Never alerted (seed-spec §7.8).
    h.assert_quiet();
}

#[test]
fn incompatible_offer_then_ack_and_nothing_else() {
    let mut h = H::new();
    let (_line, user) = h.registered_line("alice@example.com");
    let g729 = remote_sdp(1, "198.51.100.7", "18", &["a=rtpmap:18 G729/8000"]);
    let inv = incoming_invite(&ruri(&user), "in2", &g729);
    h.recv(&inv);
    h.expect("100");
    let r = h.expect("488");
    // The caller ACKs the failure; the transaction absorbs it.
    let ack = msg(
        &[
            &format!("ACK {} SIP/2.0", ruri(&user)),
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKpin2",
            "Max-Forwards: 70",
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
            &format!("To: {}", r.header(HeaderName::To).unwrap()),
            "Call-ID: in2",
            "CSeq: 1 ACK",
        ],
        "",
    );
    h.recv(&ack);
    h.assert_quiet();
}

#[test]
fn with_the_transcoder_opus_only_offers_ring() {
    let mut h = H::with(|c| c.transcoder = true);
    let (line, user) = h.registered_line("alice@example.com");
    let opus = remote_sdp(1, "198.51.100.7", "111", &["a=rtpmap:111 opus/48000/2"]);
    h.recv(&incoming_invite(&ruri(&user), "in3", &opus));
    h.expect("100");
    h.expect("180");
    assert!(matches!(h.next_event().1, LineEvent::Invited { .. }));
    h.command(
        line,
        Command::Accept {
            codecs: vec!["wideband".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let ok = h.expect("200");
    assert!(body_text(&ok).contains("RTP/AVP 111\r\n"));
    h.recv(&in_dialog(
        "ACK",
        "sip:a@x",
        "in3",
        &to_tag(&ok),
        1,
        "a",
        &[],
        "",
    ));
    let MediaCommand::Start(p) = h.next_media() else {
        panic!()
    };
    assert_eq!(p.codec.name, "opus");
    assert_eq!(
        p.transcode_to.as_ref().map(|f| f.name.as_str()),
        Some("opus")
    );
    // The client speaks what `accepted` names: speex, wideband.
    let client = p.client_codec.as_ref().map(|f| (f.name.as_str(), f.rate));
    assert_eq!(client, Some(("speex", 16000)));
    assert_eq!(
        h.next_event().1,
        LineEvent::Accepted(Some((Some("speex".into()), None)))
    );
}

#[test]
fn no_sdp_gets_488() {
    let mut h = H::new();
    let (_line, user) = h.registered_line("alice@example.com");
    h.recv(&incoming_invite(&ruri(&user), "in4", ""));
    h.expect("100");
    h.expect("488");
    h.assert_quiet();
}

#[test]
fn second_invite_while_ringing_gets_486() {
    let mut h = H::new();
    let (line, _inv, _ring) = ringing(&mut h, "in5");
    h.next_event();
    let user = {
        let c = _ring.header(HeaderName::Contact).unwrap();
        sip::NameAddr::parse(c).unwrap().uri.user.unwrap()
    };
    let second = incoming_invite(&ruri(&user), "in6", &pcmu_sdp(1, &[]));
    h.recv(&second);
    h.expect("100");
    assert_eq!(h.expect("486").call_id().unwrap(), "in6");
    h.assert_quiet();
    // The first call is untouched.
    h.command(line, Command::Reject { reason: None });
    assert_eq!(h.expect("603").call_id().unwrap(), "in5");
}

#[test]
fn second_invite_while_in_a_call_gets_486() {
    let mut h = H::new();
    let (line, user) = h.registered_line("alice@example.com");
    h.command(
        line,
        Command::Invite {
            dest: "bob@example.com".into(),
            codecs: vec!["pcmu".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let inv = h.expect("INVITE");
    h.recv(&reply(
        &inv,
        200,
        Some("t"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(1, &[])),
    ));
    h.expect("ACK");
    h.next_media();
    h.next_event();
    h.recv(&incoming_invite(&ruri(&user), "in7", &pcmu_sdp(1, &[])));
    h.expect("100");
    h.expect("486");
    h.assert_quiet();
}

#[test]
fn cancel_gives_487_and_cancelled() {
    let mut h = H::new();
    let (line, inv, ring) = ringing(&mut h, "in8");
    h.next_event();
    let cancel = msg(
        &[
            &format!("CANCEL {} SIP/2.0", inv.uri_str()),
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKpin8",
            "Max-Forwards: 70",
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
            "To: \"Alice\" <sip:alice@example.com>",
            "Call-ID: in8",
            "CSeq: 1 CANCEL",
        ],
        "",
    );
    h.recv(&cancel);
    let ok = h.expect("200");
    assert_eq!(ok.cseq().unwrap().method, sip::Method::Cancel);
    let terminated = h.expect("487");
    assert_eq!(to_tag(&terminated), to_tag(&ring));
    assert_eq!(
        h.next_event(),
        (
            line,
            LineEvent::Cancelled {
                from: "\"Bob\" <sip:bob@example.com>".into(),
                to: "\"Alice\" <sip:alice@example.com>".into()
            }
        )
    );
    h.assert_quiet();
    // accept after the cancel does nothing.
    h.command(
        line,
        Command::Accept {
            codecs: vec![],
            rtp: addr(RTP),
            video: None,
        },
    );
    h.assert_quiet();
}

#[test]
fn reject_variants() {
    for (reason, code, phrase) in [
        (None, 603, "Decline"),
        (Some("486 Busy Here"), 486, "Busy Here"),
        (Some("Go away"), 603, "Go away"),
    ] {
        let mut h = H::new();
        let (line, _inv, ring) = ringing(&mut h, "in9");
        h.next_event();
        h.command(
            line,
            Command::Reject {
                reason: reason.map(str::to_string),
            },
        );
        let r = h.next_sent();
        assert_eq!(r.code(), Some(code));
        assert_eq!(r.reason(), phrase);
        assert_eq!(to_tag(&r), to_tag(&ring));
        h.assert_quiet();
    }
}

#[test]
fn ring_timeout_gives_480_and_cancelled() {
    let mut h = H::new();
    // An anonymous line is reached by its AOR user.
    let line = h.line_with("carol@example.com", None, |c| {
        c.ring_timeout = Duration::from_secs(30)
    });
    h.recv(&incoming_invite(
        "sip:carol@192.0.2.1:5060",
        "in10",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("180");
    assert!(matches!(h.next_event(), (l, LineEvent::Invited { .. }) if l == line));
    h.advance(Duration::from_millis(29_999));
    h.assert_quiet();
    h.advance(Duration::from_millis(1));
    let r = h.expect("480");
    assert_eq!(r.call_id().unwrap(), "in10");
    assert!(matches!(h.next_event(), (l, LineEvent::Cancelled { .. }) if l == line));
    h.assert_quiet();
}

#[test]
fn no_ack_ends_the_call_with_bye() {
    let mut h = H::new();
    let (line, _inv, _ring) = ringing(&mut h, "in11");
    h.next_event();
    h.command(line, accept_pcmu());
    h.expect("200");
    h.advance(Duration::from_millis(31_999));
    assert!(h.sent_kinds().iter().all(|k| k == "200"));
    h.assert_quiet();
    h.advance(Duration::from_millis(1));
    let bye = h.expect("BYE");
    // UAS dialog: the route set is the Record-Route, the target Bob's Contact.
    assert_eq!(bye.uri_str(), "sip:bob@198.51.100.7:5062");
    assert_eq!(bye.routes().unwrap().len(), 1);
    assert_eq!(bye.from().unwrap().tag(), Some(to_tag(&_ring).as_str()));
    assert_eq!(bye.to().unwrap().tag(), Some("bobtag"));
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    assert!(h.media.is_empty());
}

#[test]
fn accept_that_cannot_answer_gives_488_and_byed() {
    // seed-spec §8 item 15, with the check moved earlier the offer rings; the client's
    // list then has no common codec.
    let mut h = H::new();
    let (line, _inv, _ring) = ringing(&mut h, "in12");
    h.next_event();
    h.command(
        line,
        Command::Accept {
            codecs: vec!["wideband".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    h.expect("488");
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    h.assert_quiet();
}

#[test]
fn two_lines_each_get_their_own_calls() {
    let mut h = H::new();
    let (alice, alice_user) = h.registered_line("alice@example.com");
    let (bob, bob_user) = h.registered_line("bob@example.com");
    assert_ne!(alice_user, bob_user);
    h.recv(&incoming_invite(
        &ruri(&bob_user),
        "for-bob",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("180");
    assert!(matches!(h.next_event(), (l, LineEvent::Invited { .. }) if l == bob));
    h.recv(&incoming_invite(
        &ruri(&alice_user),
        "for-alice",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("180");
    assert!(matches!(h.next_event(), (l, LineEvent::Invited { .. }) if l == alice));
    // By AOR user too (a proxy that keeps the AOR in the Request-URI).
    let (carol, _) = h.registered_line("carol@example.com");
    h.recv(&incoming_invite(
        "sip:carol@192.0.2.1:5060",
        "for-carol",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("180");
    assert!(matches!(h.next_event(), (l, LineEvent::Invited { .. }) if l == carol));
    // Each accepts its own call.
    h.command(bob, accept_pcmu());
    assert_eq!(h.expect("200").call_id().unwrap(), "for-bob");
    h.command(alice, Command::Reject { reason: None });
    assert_eq!(h.expect("603").call_id().unwrap(), "for-alice");
}

#[test]
fn out_of_dialog_requests() {
    let mut h = H::new();
    h.registered_line("alice@example.com");
    let options = msg(
        &[
            "OPTIONS sip:192.0.2.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKopt",
            "Max-Forwards: 70",
            "From: <sip:monitor@example.com>;tag=m",
            "To: <sip:192.0.2.1:5060>",
            "Call-ID: opt1",
            "CSeq: 1 OPTIONS",
        ],
        "",
    );
    h.recv(&options);
    let r = h.expect("200");
    assert!(r.header(HeaderName::Allow).unwrap().contains("INFO"));
    // Unknown user: 404.
    h.recv(&incoming_invite(
        "sip:nobody@192.0.2.1:5060",
        "nobody1",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("404");
    // SUBSCRIBE: 405 with Allow (the original never answered, seed-spec §7.33).
    let sub = msg(
        &[
            "SUBSCRIBE sip:alice@192.0.2.1:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsub",
            "Max-Forwards: 70",
            "From: <sip:bob@example.com>;tag=s",
            "To: <sip:alice@example.com>",
            "Call-ID: sub1",
            "CSeq: 1 SUBSCRIBE",
            "Event: presence",
        ],
        "",
    );
    h.recv(&sub);
    assert!(h.expect("405").header(HeaderName::Allow).is_some());
    // A BYE for no dialog: 481.
    let bye = in_dialog(
        "BYE",
        "sip:alice@192.0.2.1",
        "none",
        "nosuchtag",
        2,
        "b",
        &[],
        "",
    );
    h.recv(&bye);
    h.expect("481");
    // Garbage with enough headers to answer: 400.
    h.recv_bytes(b"INVITE sip:alice@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@y>\r\nCall-ID: g\r\nCSeq: 1 INVITE\r\nContent-Length: abc\r\n\r\n");
    h.expect("400");
    // Unparseable responses and noise are dropped.
    h.recv_bytes(b"SIP/2.0 200 OK\r\n\r\n");
    h.recv_bytes(b"\r\n\r\n");
    h.recv_bytes(&[0xff, 0x00, 0x13]);
    h.assert_quiet();
}

#[test]
fn required_extension_gets_420() {
    let mut h = H::new();
    let (_line, user) = h.registered_line("alice@example.com");
    let mut inv = incoming_invite(&ruri(&user), "in13", &pcmu_sdp(1, &[]));
    inv = inv.append_header("Require", "100rel");
    h.recv(&inv);
    h.expect("100");
    let r = h.expect("420");
    assert_eq!(r.header_by_name("Unsupported"), Some("100rel"));
    h.assert_quiet();
}

#[test]
fn ack_reusing_the_invite_branch_is_understood() {
    // Some UAs send the 2xx ACK with the INVITE's branch: it reaches the server
    // transaction in its Accepted state (RFC 6026 §8.7), which passes it up.
    let mut h = H::new();
    let (line, _inv, _ring) = ringing(&mut h, "in20");
    h.next_event();
    h.command(line, accept_pcmu());
    let ok = h.expect("200");
    let ack = msg(
        &[
            "ACK sip:alice@192.0.2.1 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKpin20",
            "Max-Forwards: 70",
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
            &format!("To: {}", ok.header(HeaderName::To).unwrap()),
            "Call-ID: in20",
            "CSeq: 1 ACK",
        ],
        "",
    );
    h.recv(&ack);
    assert!(matches!(h.next_media(), MediaCommand::Start(_)));
    assert!(matches!(h.next_event().1, LineEvent::Accepted(_)));
}

/// RFC 3261 §12.1.1: the 180 and the 200 (first sent and retransmitted) carry the
/// INVITE's Record-Route values in order, so the caller's BYE follows the proxies' route
/// (a WebSocket caller's BYE without it reached the proxy as a new request to relay,
/// which challenged it).
#[test]
fn dialog_responses_copy_record_route() {
    let mut h = H::new();
    let (line, user) = h.registered_line("alice@example.com");
    let rr = [
        "<sip:192.0.2.10:5060;lr>",
        "<sip:192.0.2.10:8080;transport=ws;lr;sbflow=3>, <sip:203.0.113.5;lr;x=y>",
    ];
    let inv = msg(
        &[
            &format!("INVITE {} SIP/2.0", ruri(&user)),
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKprr1",
            "Via: SIP/2.0/WS caller.invalid;branch=z9hG4bKrr1",
            &format!("Record-Route: {}", rr[0]),
            &format!("Record-Route: {}", rr[1]),
            "Max-Forwards: 69",
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
            "To: \"Alice\" <sip:alice@example.com>",
            "Call-ID: rr1",
            "CSeq: 1 INVITE",
            "Contact: <sip:bob@caller.invalid;transport=ws>",
        ],
        &pcmu_sdp(1, &[]),
    );
    h.recv(&inv);
    h.expect("100");
    fn routes(m: &Message) -> Vec<&str> {
        m.header_lines(HeaderName::RecordRoute).collect()
    }
    let ring = h.expect("180");
    assert_eq!(routes(&ring), rr);
    let _ = h.next_event();
    h.command(line, accept_pcmu());
    let ok = h.expect("200");
    assert_eq!(routes(&ok), rr);
    h.advance(Duration::from_millis(500));
    let again = h.next_sent();
    assert_eq!(describe(&again), "200");
    assert_eq!(routes(&again), rr);
}
