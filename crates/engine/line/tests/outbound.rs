//! Outbound calls: INVITE, ringing, answer, rejection, digest, CANCEL in every timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::auth::{Algorithm, Credentials, compute_response};
use sip::{HeaderName, Message};
use switchboard_line::{Command, LineEvent, LineId, MediaCommand};

const CALLEE_TAG: &str = "callee1";

fn invite(h: &mut H, line: LineId, dest: &str, codecs: &[&str]) -> Message {
    h.command(
        line,
        Command::Invite {
            dest: dest.into(),
            codecs: codecs.iter().map(|s| s.to_string()).collect(),
            rtp: addr(RTP),
            video: None,
        },
    );
    h.expect("INVITE")
}

/// A 200 from the callee, through a record-routing proxy.
fn ok(inv: &Message, tag: &str) -> Message {
    reply(
        inv,
        200,
        Some(tag),
        &[
            ("Record-Route", "<sip:192.0.2.10:5060;lr>"),
            ("Contact", "<sip:bob@198.51.100.7:5062>"),
        ],
        Some(&pcmu_sdp(1, &[])),
    )
}

#[test]
fn invite_ringing_answer_ack() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", None, |c| {
        c.display_name = Some("Alice".into())
    });
    let inv = invite(&mut h, line, "\"Bob\" <sip:bob@example.com>", &[]);
    assert_eq!(inv.uri_str(), "sip:bob@example.com");
    assert_eq!(
        inv.header(HeaderName::To).unwrap(),
        "\"Bob\" <sip:bob@example.com>"
    );
    let from = inv.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("Alice"));
    assert!(from.tag().is_some());
    assert_eq!(inv.cseq().unwrap().seq, 1);
    assert_eq!(inv.max_forwards().unwrap(), Some(70));
    assert!(
        inv.header(HeaderName::Contact)
            .unwrap()
            .starts_with("<sip:alice-")
    );
    assert!(inv.header(HeaderName::Allow).unwrap().contains("INVITE"));
    assert_eq!(inv.header(HeaderName::UserAgent), Some("Switchboard-test"));
    assert_eq!(inv.header(HeaderName::ContentType), Some("application/sdp"));
    // The seed's default offer, audio only: speex/16000 and telephone-event.
    let offer = body_text(&inv);
    assert!(
        offer.contains("m=audio 40000 RTP/AVP 96 101\r\n"),
        "{offer}"
    );
    assert!(offer.contains("a=rtpmap:96 speex/16000\r\n"));
    assert!(offer.contains("c=IN IP4 192.0.2.1\r\n"));
    assert!(!offer.contains("m=video"));

    h.recv(&reply(&inv, 100, None, &[], None));
    h.recv(&reply(&inv, 180, Some(CALLEE_TAG), &[], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Ringing("180 Ringing".into()))
    );
    h.recv(&reply(&inv, 183, Some(CALLEE_TAG), &[], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Ringing("183 Session Progress".into()))
    );
    h.assert_quiet();

    // The answer offers PCMU, which the default offer does not have: 488 handling is
    // tested elsewhere; here the callee answers with speex.
    let answer = remote_sdp(
        1,
        "198.51.100.7",
        "96 101",
        &[
            "a=rtpmap:96 speex/16000",
            "a=rtpmap:101 telephone-event/8000",
        ],
    );
    let ok = reply(
        &inv,
        200,
        Some(CALLEE_TAG),
        &[
            (
                "Record-Route",
                "<sip:p2.example.net;lr>, <sip:192.0.2.10:5060;lr>",
            ),
            ("Contact", "<sip:bob@198.51.100.7:5062>"),
        ],
        Some(&answer),
    );
    h.recv(&ok);
    let (flow, ack) = h.next_sent_flow();
    assert_eq!(describe(&ack), "ACK");
    // The first route is the proxy (Record-Route reversed).
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(ack.uri_str(), "sip:bob@198.51.100.7:5062");
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.cseq().unwrap().method, sip::Method::Ack);
    assert_eq!(to_tag(&ack), CALLEE_TAG);
    assert_ne!(branch(&ack), branch(&inv));
    let routes: Vec<String> = ack
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        routes,
        vec!["sip:192.0.2.10:5060;lr", "sip:p2.example.net;lr"]
    );
    let MediaCommand::Start(p) = h.next_media() else {
        panic!("expected Start")
    };
    assert_eq!(p.local, addr(RTP));
    assert_eq!(p.remote_rtp, addr(REMOTE_RTP));
    assert_eq!(p.codec.name, "speex");
    assert_eq!(p.codec.rate, 16000);
    assert_eq!(p.telephone_event, Some(101));
    assert_eq!(p.ptime, 20);
    assert_eq!(p.transcode_to, None);
    assert_eq!(p.client_codec, None);
    assert!(p.send && p.recv);
    // No codec list: `accepted()` without arguments.
    assert_eq!(h.next_event(), (line, LineEvent::Accepted(None)));
    h.assert_quiet();

    // A retransmitted 2xx is ACKed again, not BYEd.
    h.recv(&ok);
    h.expect("ACK");
    h.assert_quiet();

    // Local hang-up: BYE, media stop, no event.
    h.command(line, Command::Bye);
    let (flow, bye) = h.next_sent_flow();
    assert_eq!(describe(&bye), "BYE");
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(bye.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(h.next_media(), MediaCommand::Stop);
    h.recv(&reply(&bye, 200, None, &[], None));
    h.assert_quiet();
}

#[test]
fn codec_list_offer_and_accepted_arguments() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(
        &mut h,
        line,
        "bob@example.com",
        &[
            "wideband",
            "narrowband",
            "pcmu",
            "pcma",
            "dtmf",
            "h264",
            "flv",
        ],
    );
    assert_eq!(inv.uri_str(), "sip:bob@example.com");
    let offer = body_text(&inv);
    assert!(
        offer.contains("m=audio 40000 RTP/AVP 96 98 0 8 101\r\n"),
        "{offer}"
    );
    h.recv(&ok(&inv, CALLEE_TAG));
    h.expect("ACK");
    let MediaCommand::Start(p) = h.next_media() else {
        panic!()
    };
    assert_eq!(p.codec.name.to_ascii_lowercase(), "pcmu");
    assert_eq!(p.codec.pt, 0);
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Accepted(Some((Some("pcmu".into()), None))))
    );
}

#[test]
fn already_in_a_call_is_rejected_without_sip() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.command(
        line,
        Command::Invite {
            dest: "carol@example.com".into(),
            codecs: vec![],
            rtp: addr(RTP),
            video: None,
        },
    );
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected(
            "Already in an active or pending call".into()
        )]
    );
    h.assert_quiet();
}

#[test]
fn busy_is_rejected_with_its_status() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&reply(&inv, 486, Some(CALLEE_TAG), &[], None));
    // The transaction layer ACKs the failure.
    let ack = h.expect("ACK");
    assert_eq!(branch(&ack), branch(&inv));
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected("486 Busy Here".into())]
    );
    // The line is free again.
    invite(&mut h, line, "carol@example.com", &["pcmu"]);
}

#[test]
fn proxy_challenge_is_answered_once() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    let reg = h.expect("REGISTER");
    h.recv(&reply(&reg, 200, Some("r"), &[], None));
    h.next_event();
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    let challenge = "Digest realm=\"example.com\", nonce=\"pxy\", qop=\"auth\"";
    h.recv(&reply(
        &inv,
        407,
        Some("p"),
        &[("Proxy-Authenticate", challenge)],
        None,
    ));
    h.expect("ACK");
    let inv2 = h.expect("INVITE");
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    assert_eq!(inv2.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(inv2.from().unwrap().tag(), inv.from().unwrap().tag());
    assert_ne!(branch(&inv2), branch(&inv));
    assert_eq!(inv2.body(), inv.body());
    let c = Credentials::parse(inv2.header(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(c.uri, "sip:bob@example.com");
    assert_eq!(
        c.response,
        compute_response(
            Algorithm::Md5,
            "alice",
            "example.com",
            "secret",
            "pxy",
            c.cnonce.as_deref(),
            c.nc,
            c.qop.as_deref(),
            "INVITE",
            "sip:bob@example.com"
        )
    );
    assert!(h.events.is_empty());
    h.recv(&ok(&inv2, CALLEE_TAG));
    let ack = h.expect("ACK");
    assert_eq!(ack.cseq().unwrap().seq, 2);
    // RFC 3261 §13.2.2.4: the ACK carries the INVITE's credentials.
    assert!(ack.header(HeaderName::ProxyAuthorization).is_some());
    assert!(matches!(h.next_media(), MediaCommand::Start(_)));
    assert!(matches!(h.next_event().1, LineEvent::Accepted(_)));
    // A BYE now goes with CSeq 3.
    h.command(line, Command::Bye);
    assert_eq!(h.expect("BYE").cseq().unwrap().seq, 3);
}

#[test]
fn a_second_challenge_rejects_the_call() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    h.expect("REGISTER");
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    let challenge = "Digest realm=\"example.com\", nonce=\"pxy\"";
    h.recv(&reply(
        &inv,
        407,
        Some("p"),
        &[("Proxy-Authenticate", challenge)],
        None,
    ));
    h.expect("ACK");
    let inv2 = h.expect("INVITE");
    h.recv(&reply(
        &inv2,
        407,
        Some("p"),
        &[("Proxy-Authenticate", challenge)],
        None,
    ));
    h.expect("ACK");
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected(
            "407 Proxy Authentication Required".into()
        )]
    );
}

#[test]
fn bye_before_any_provisional_cancels_once_one_arrives() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.command(line, Command::Bye);
    // RFC 3261 §9.1: no CANCEL before a provisional response.
    h.assert_quiet();
    // The line is free at once.
    h.recv(&reply(&inv, 100, None, &[], None));
    h.assert_quiet();
    h.recv(&reply(&inv, 180, Some(CALLEE_TAG), &[], None));
    let (flow, cancel) = h.next_sent_flow();
    assert_eq!(describe(&cancel), "CANCEL");
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(cancel.uri_str(), inv.uri_str());
    assert_eq!(branch(&cancel), branch(&inv));
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(
        cancel.header(HeaderName::From),
        inv.header(HeaderName::From)
    );
    assert_eq!(cancel.header(HeaderName::To), inv.header(HeaderName::To));
    h.assert_quiet();
    h.recv(&reply(&cancel, 200, None, &[], None));
    h.recv(&reply(&inv, 487, Some(CALLEE_TAG), &[], None));
    h.expect("ACK");
    // No `ringing` (after bye) and no `rejected` for a call the client gave up.
    h.assert_quiet();
    h.advance(Duration::from_secs(60));
    h.assert_quiet();
}

#[test]
fn bye_after_ringing_cancels_at_once() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&reply(&inv, 180, Some(CALLEE_TAG), &[], None));
    h.next_event();
    h.command(line, Command::Bye);
    let cancel = h.expect("CANCEL");
    h.recv(&reply(&cancel, 200, None, &[], None));
    h.recv(&reply(&inv, 487, Some(CALLEE_TAG), &[], None));
    h.expect("ACK");
    h.assert_quiet();
}

#[test]
fn late_2xx_after_cancel_is_acked_and_byed() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&reply(&inv, 180, Some(CALLEE_TAG), &[], None));
    h.next_event();
    h.command(line, Command::Bye);
    let cancel = h.expect("CANCEL");
    // The callee answered before the CANCEL reached it.
    h.recv(&reply(&cancel, 481, None, &[], None));
    h.recv(&ok(&inv, CALLEE_TAG));
    let ack = h.expect("ACK");
    assert_eq!(to_tag(&ack), CALLEE_TAG);
    let bye = h.expect("BYE");
    assert_eq!(bye.uri_str(), "sip:bob@198.51.100.7:5062");
    assert_eq!(to_tag(&bye), CALLEE_TAG);
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(bye.routes().unwrap().len(), 1);
    h.recv(&reply(&bye, 200, None, &[], None));
    // No media, no events: the client already hung up.
    h.assert_quiet();
}

#[test]
fn late_2xx_before_any_provisional_is_acked_and_byed() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.command(line, Command::Bye);
    h.recv(&ok(&inv, CALLEE_TAG));
    h.expect("ACK");
    h.expect("BYE");
    h.assert_quiet();
}

#[test]
fn forked_second_2xx_is_acked_and_byed() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&ok(&inv, CALLEE_TAG));
    h.expect("ACK");
    h.next_media();
    h.next_event();
    h.recv(&ok(&inv, "fork2"));
    let ack = h.expect("ACK");
    assert_eq!(to_tag(&ack), "fork2");
    let bye = h.expect("BYE");
    assert_eq!(to_tag(&bye), "fork2");
    h.assert_quiet();
    // The first call is still up: its BYE goes to the first tag.
    h.command(line, Command::Bye);
    assert_eq!(to_tag(&h.expect("BYE")), CALLEE_TAG);
}

#[test]
fn timer_b_rejects_with_408() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.advance(Duration::from_millis(31_999));
    assert!(h.events.is_empty());
    h.advance(Duration::from_millis(1));
    h.sent.clear();
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected("408 Request Timeout".into())]
    );
}

#[test]
fn no_answer_timeout_cancels_and_rejects() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", None, |c| {
        c.invite_timeout = Duration::from_secs(20)
    });
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&reply(&inv, 180, Some(CALLEE_TAG), &[], None));
    h.next_event();
    h.advance(Duration::from_millis(19_999));
    h.assert_quiet();
    h.advance(Duration::from_millis(1));
    h.expect("CANCEL");
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected("408 Request Timeout".into())]
    );
}

#[test]
fn unusable_answer_is_acked_byed_and_rejected() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    // A 2xx without SDP to our offer.
    h.recv(&reply(
        &inv,
        200,
        Some(CALLEE_TAG),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        None,
    ));
    h.expect("ACK");
    h.expect("BYE");
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected("488 Not Acceptable Here".into())]
    );
    assert!(h.media.is_empty());
}

#[test]
fn destination_without_host_goes_to_the_aor_domain() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "12125551234", &["pcmu"]);
    assert_eq!(inv.uri_str(), "sip:12125551234@example.com");
}

#[test]
fn invite_without_proxy_locates_the_request_uri() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", None, |c| c.outbound_proxy = None);
    h.command(
        line,
        Command::Invite {
            dest: "sip:bob@biloxi.example.com".into(),
            codecs: vec!["pcmu".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let r = h.resolves.pop_front().unwrap();
    assert_eq!(r.host, "biloxi.example.com");
    // `bye` while the name is still being located: nothing is ever sent.
    h.command(line, Command::Bye);
    h.stack.resolved(
        h.now,
        r.id,
        &[(sip::Transport::Udp, addr("203.0.113.20:5060"))],
    );
    h.pump();
    h.assert_quiet();
    // Unresolvable: 503.
    h.command(
        line,
        Command::Invite {
            dest: "sip:bob@nowhere.invalid".into(),
            codecs: vec!["pcmu".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let r = h.resolves.pop_front().unwrap();
    h.stack.resolved(h.now, r.id, &[]);
    h.pump();
    assert_eq!(
        h.event_list(),
        vec![LineEvent::Rejected(
            "503 Service unavailable - cannot resolve DNS target".into()
        )]
    );
}

#[test]
fn retransmitted_2xx_after_timer_m_is_acked_again() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    let ok = ok(&inv, CALLEE_TAG);
    h.recv(&ok);
    h.expect("ACK");
    h.next_media();
    h.next_event();
    // The INVITE transaction is gone after 64*T1; the 2xx is now a stray response.
    h.advance(Duration::from_secs(33));
    h.assert_quiet();
    h.recv(&ok);
    let ack = h.expect("ACK");
    assert_eq!(to_tag(&ack), CALLEE_TAG);
    h.assert_quiet();
}

#[test]
fn challenged_bye_is_retried_with_credentials() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    let reg = h.expect("REGISTER");
    h.recv(&reply(&reg, 200, Some("r"), &[], None));
    h.next_event();
    let inv = invite(&mut h, line, "bob@example.com", &["pcmu"]);
    h.recv(&ok(&inv, CALLEE_TAG));
    h.expect("ACK");
    h.next_media();
    h.next_event();
    h.command(line, Command::Bye);
    let bye = h.expect("BYE");
    assert_eq!(bye.cseq().unwrap().seq, 2);
    let challenge = "Digest realm=\"example.com\", nonce=\"byenonce\", qop=\"auth\"";
    h.recv(&reply(
        &bye,
        401,
        None,
        &[("WWW-Authenticate", challenge)],
        None,
    ));
    let bye2 = h.expect("BYE");
    assert_eq!(bye2.cseq().unwrap().seq, 3);
    let c = Credentials::parse(bye2.header(HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!(c.nonce, "byenonce");
    assert_eq!(c.uri, bye2.uri_str());
}
