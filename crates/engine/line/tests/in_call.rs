//! In a call: remote and local hold, re-INVITE without SDP, glare, DTMF, other
//! in-dialog requests, CSeq order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::{HeaderName, Message};
use switchboard_line::{Command, LineEvent, LineId, MediaCommand};

/// An incoming call from Bob, accepted and ACKed. Returns the line, the Call-ID, our
/// tag and our 200 (whose SDP is our answer).
fn established(h: &mut H, offer: &str) -> (LineId, String, String, Message) {
    let (line, user) = h.registered_line("alice@example.com");
    let inv = incoming_invite(&format!("sip:{user}@192.0.2.1:5060"), "call1", offer);
    h.recv(&inv);
    h.expect("100");
    h.expect("180");
    h.next_event();
    h.command(
        line,
        Command::Accept {
            codecs: vec!["pcmu".into(), "dtmf".into()],
            rtp: addr(RTP),
            video: None,
        },
    );
    let ok = h.expect("200");
    let tag = to_tag(&ok);
    h.recv(&in_dialog(
        "ACK",
        "sip:a@x",
        "call1",
        &tag,
        1,
        "ack1",
        &[],
        "",
    ));
    assert!(matches!(h.next_media(), MediaCommand::Start(_)));
    assert!(matches!(h.next_event().1, LineEvent::Accepted(_)));
    h.assert_quiet();
    (line, "call1".into(), tag, ok)
}

fn reinvite(h: &mut H, tag: &str, cseq: u32, body: &str) -> Message {
    let m = in_dialog(
        "INVITE",
        "sip:alice@192.0.2.1",
        "call1",
        tag,
        cseq,
        &format!("re{cseq}"),
        &[],
        body,
    );
    h.recv(&m);
    h.expect("100");
    h.expect("200")
}

fn ack(h: &mut H, tag: &str, cseq: u32, body: &str) {
    h.recv(&in_dialog(
        "ACK",
        "sip:alice@192.0.2.1",
        "call1",
        tag,
        cseq,
        &format!("ack{cseq}"),
        &[],
        body,
    ));
}

#[test]
fn remote_hold_and_resume_bump_our_version() {
    let mut h = H::new();
    let (line, _, tag, ok) = established(&mut h, &pcmu_sdp(1, &[]));
    let v1 = sdp_of(&ok).version();

    // Hold with a=sendonly.
    let ok2 = reinvite(&mut h, &tag, 2, &pcmu_sdp(2, &["a=sendonly"]));
    let answer = sdp_of(&ok2);
    assert_eq!(
        answer.version(),
        v1 + 1,
        "o= version incremented (RFC 3264 §8)"
    );
    assert_eq!(answer.session_id(), sdp_of(&ok).session_id());
    assert!(
        body_text(&ok2).contains("a=recvonly"),
        "{}",
        body_text(&ok2)
    );
    assert!(ok2.header(HeaderName::Contact).is_some());
    h.assert_quiet();
    ack(&mut h, &tag, 2, "");
    let MediaCommand::Update(p) = h.next_media() else {
        panic!()
    };
    assert!(!p.send && p.recv);
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));

    // Resume.
    let ok3 = reinvite(&mut h, &tag, 3, &pcmu_sdp(3, &["a=sendrecv"]));
    assert_eq!(sdp_of(&ok3).version(), v1 + 2);
    assert!(body_text(&ok3).contains("a=sendrecv"));
    ack(&mut h, &tag, 3, "");
    let MediaCommand::Update(p) = h.next_media() else {
        panic!()
    };
    assert!(p.send && p.recv);
    assert_eq!(h.next_event(), (line, LineEvent::Holded(false)));

    // Legacy hold: c=0.0.0.0 (seed-spec §8 item 17).
    let legacy = remote_sdp(
        4,
        "0.0.0.0",
        "0 101",
        &["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"],
    );
    let ok4 = reinvite(&mut h, &tag, 4, &legacy);
    assert_eq!(sdp_of(&ok4).version(), v1 + 3);
    ack(&mut h, &tag, 4, "");
    let MediaCommand::Update(p) = h.next_media() else {
        panic!()
    };
    assert!(!p.send);
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));

    // a=inactive at session level is hold too.
    let inactive = remote_sdp(
        5,
        "198.51.100.7",
        "0",
        &["a=rtpmap:0 PCMU/8000", "a=inactive"],
    );
    reinvite(&mut h, &tag, 5, &inactive);
    ack(&mut h, &tag, 5, "");
    h.next_media();
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));
}

#[test]
fn reinvite_2xx_is_retransmitted_until_ack() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    reinvite(&mut h, &tag, 2, &pcmu_sdp(2, &["a=sendonly"]));
    h.advance(Duration::from_millis(500));
    h.expect("200");
    ack(&mut h, &tag, 2, "");
    h.next_media();
    h.next_event();
    h.advance(Duration::from_secs(40));
    h.assert_quiet();
    let _ = line;
}

#[test]
fn reinvite_without_ack_ends_the_call() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    reinvite(&mut h, &tag, 2, &pcmu_sdp(2, &[]));
    h.advance(Duration::from_secs(32));
    let kinds = h.sent_kinds();
    assert_eq!(kinds.last().map(String::as_str), Some("BYE"));
    assert_eq!(h.next_media(), MediaCommand::Stop);
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
}

#[test]
fn reinvite_without_sdp_gets_our_offer_and_the_ack_answers() {
    let mut h = H::new();
    let (line, _, tag, ok) = established(&mut h, &pcmu_sdp(1, &[]));
    let ok2 = reinvite(&mut h, &tag, 2, "");
    let offer = sdp_of(&ok2);
    assert_eq!(offer.version(), sdp_of(&ok).version() + 1);
    assert!(body_text(&ok2).contains("m=audio 40000 RTP/AVP 0 101"));
    ack(&mut h, &tag, 2, &pcmu_sdp(2, &["a=sendonly"]));
    assert!(matches!(h.next_media(), MediaCommand::Update(_)));
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));
}

#[test]
fn incompatible_reinvite_gets_488_and_the_call_goes_on() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    let g729 = remote_sdp(2, "198.51.100.7", "18", &["a=rtpmap:18 G729/8000"]);
    let m = in_dialog("INVITE", "sip:a@x", "call1", &tag, 2, "bad", &[], &g729);
    h.recv(&m);
    h.expect("100");
    h.expect("488");
    h.assert_quiet();
    // Still in the call: a remote BYE is reported.
    h.recv(&in_dialog(
        "BYE",
        "sip:a@x",
        "call1",
        &tag,
        3,
        "bye",
        &[],
        "",
    ));
    h.expect("200");
    assert_eq!(h.next_media(), MediaCommand::Stop);
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
}

#[test]
fn local_hold_sends_a_reoffer() {
    let mut h = H::new();
    let (line, _, tag, ok) = established(&mut h, &pcmu_sdp(1, &[]));
    h.command(line, Command::Hold(true));
    let (flow, re) = h.next_sent_flow();
    assert_eq!(describe(&re), "INVITE");
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(re.uri_str(), "sip:bob@198.51.100.7:5062");
    assert_eq!(re.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(re.to().unwrap().tag(), Some("bobtag"));
    assert_eq!(re.cseq().unwrap().seq, 1);
    assert_eq!(re.routes().unwrap().len(), 1);
    let offer = sdp_of(&re);
    assert_eq!(offer.version(), sdp_of(&ok).version() + 1);
    let text = body_text(&re);
    assert!(text.contains("a=sendonly"), "{text}");
    assert!(
        text.contains("c=IN IP4 192.0.2.1"),
        "the real address stays: {text}"
    );
    h.recv(&reply(
        &re,
        200,
        None,
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(2, &["a=recvonly"])),
    ));
    let a = h.expect("ACK");
    assert_eq!(a.cseq().unwrap().seq, 1);
    let MediaCommand::Update(p) = h.next_media() else {
        panic!()
    };
    assert!(p.send && !p.recv);
    // No callback for our own hold.
    h.assert_quiet();
    // The same state again: nothing to do.
    h.command(line, Command::Hold(true));
    h.assert_quiet();
    h.command(line, Command::Hold(false));
    let re2 = h.expect("INVITE");
    assert_eq!(re2.cseq().unwrap().seq, 2);
    assert_eq!(sdp_of(&re2).version(), sdp_of(&ok).version() + 2);
    assert!(body_text(&re2).contains("a=sendrecv"));
}

#[test]
fn glare_491_retries_after_a_pause() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    h.command(line, Command::Hold(true));
    let re = h.expect("INVITE");
    // The remote's re-INVITE crosses ours: it gets 491.
    let theirs = in_dialog(
        "INVITE",
        "sip:a@x",
        "call1",
        &tag,
        2,
        "glare",
        &[],
        &pcmu_sdp(2, &[]),
    );
    h.recv(&theirs);
    h.expect("100");
    h.expect("491");
    // And ours gets 491 too.
    h.recv(&reply(&re, 491, None, &[], None));
    h.expect("ACK");
    h.assert_quiet();
    // We did not create the Call-ID: 0-2 s (RFC 3261 §14.1).
    h.advance(Duration::from_millis(2000));
    let again = h.expect("INVITE");
    assert_eq!(again.cseq().unwrap().seq, 2);
    assert!(body_text(&again).contains("a=sendonly"));
}

#[test]
fn hold_during_a_reinvite_waits_for_it() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    reinvite(&mut h, &tag, 2, &pcmu_sdp(2, &[]));
    h.command(line, Command::Hold(true));
    h.assert_quiet();
    ack(&mut h, &tag, 2, "");
    h.next_media();
    assert_eq!(h.next_event(), (line, LineEvent::Holded(false)));
    let re = h.expect("INVITE");
    assert!(body_text(&re).contains("a=sendonly"));
}

#[test]
fn dtmf_by_rfc4733_when_negotiated() {
    let mut h = H::new();
    let (line, ..) = established(&mut h, &pcmu_sdp(1, &[]));
    h.command(line, Command::SendDtmf('5'));
    assert_eq!(h.next_media(), MediaCommand::SendDtmf('5'));
    h.command(line, Command::SendDtmf('x'));
    h.assert_quiet();
}

#[test]
fn dtmf_by_info_without_telephone_event() {
    let mut h = H::new();
    let offer = remote_sdp(1, "198.51.100.7", "0", &["a=rtpmap:0 PCMU/8000"]);
    let (line, _, tag, _) = established(&mut h, &offer);
    h.command(line, Command::SendDtmf('#'));
    let info = h.expect("INFO");
    assert_eq!(
        info.header(HeaderName::ContentType),
        Some("application/dtmf-relay")
    );
    assert_eq!(body_text(&info), "Signal=#\r\nDuration=160\r\n");
    assert_eq!(info.from().unwrap().tag(), Some(tag.as_str()));
    h.recv(&reply(&info, 200, None, &[], None));
    h.assert_quiet();
}

#[test]
fn incoming_info_dtmf_and_other_requests() {
    let mut h = H::new();
    let (line, _, tag, _) = established(&mut h, &pcmu_sdp(1, &[]));
    let info = in_dialog(
        "INFO",
        "sip:a@x",
        "call1",
        &tag,
        2,
        "info",
        &["Content-Type: application/dtmf-relay"],
        "Signal=5\r\nDuration=160\r\n",
    );
    h.recv(&info);
    h.expect("200");
    assert_eq!(h.next_event(), (line, LineEvent::Dtmf('5')));
    let fir = in_dialog(
        "INFO",
        "sip:a@x",
        "call1",
        &tag,
        3,
        "fir",
        &["Content-Type: application/media_control+xml"],
        "<media_control/>",
    );
    h.recv(&fir);
    h.expect("415");
    let options = in_dialog("OPTIONS", "sip:a@x", "call1", &tag, 4, "opt", &[], "");
    h.recv(&options);
    h.expect("200");
    let message = in_dialog(
        "MESSAGE",
        "sip:a@x",
        "call1",
        &tag,
        5,
        "msg",
        &["Content-Type: text/plain"],
        "hi",
    );
    h.recv(&message);
    h.expect("200");
    let update = in_dialog("UPDATE", "sip:a@x", "call1", &tag, 6, "upd", &[], "");
    h.recv(&update);
    let r = h.expect("405");
    assert!(r.header(HeaderName::Allow).unwrap().contains("BYE"));
    // An old CSeq is out of order: 500 (RFC 3261 §12.2.2).
    let old = in_dialog("OPTIONS", "sip:a@x", "call1", &tag, 3, "old", &[], "");
    h.recv(&old);
    h.expect("500");
    h.assert_quiet();
}

#[test]
fn reinvite_481_ends_the_call() {
    let mut h = H::new();
    let (line, ..) = established(&mut h, &pcmu_sdp(1, &[]));
    h.command(line, Command::Hold(true));
    let re = h.expect("INVITE");
    h.recv(&reply(&re, 481, None, &[], None));
    h.expect("ACK");
    assert_eq!(h.next_media(), MediaCommand::Stop);
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
}

#[test]
fn outbound_call_gets_remote_hold_and_bye() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
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
    let ok = reply(
        &inv,
        200,
        Some("callee"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(1, &[])),
    );
    h.recv(&ok);
    h.expect("ACK");
    h.next_media();
    h.next_event();
    let offer_version = sdp::parse(inv.body()).unwrap().version();
    let hold = callee_request(
        &ok,
        "INVITE",
        1,
        "rehold",
        &[],
        &pcmu_sdp(2, &["a=sendonly"]),
    );
    h.recv_from(&hold, "198.51.100.7:5062");
    h.expect("100");
    let ok2 = h.expect("200");
    assert_eq!(sdp_of(&ok2).version(), offer_version + 1);
    h.recv_from(
        &callee_request(&ok, "ACK", 1, "ackhold", &[], ""),
        "198.51.100.7:5062",
    );
    assert!(matches!(h.next_media(), MediaCommand::Update(_)));
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));
    h.recv_from(
        &callee_request(&ok, "BYE", 2, "bye", &[], ""),
        "198.51.100.7:5062",
    );
    h.expect("200");
    assert_eq!(h.next_media(), MediaCommand::Stop);
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    h.assert_quiet();
}
