//! Removing a line in every call state (seed-spec §1.7 with §7.22 fixed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::HeaderName;
use switchboard_line::{Command, LineEvent, MediaCommand};

#[test]
fn remove_during_outbound_ringing_cancels_then_unregisters() {
    let mut h = H::new();
    let (line, _) = h.registered_line("alice@example.com");
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
    h.recv(&reply(&inv, 180, Some("callee"), &[], None));
    h.next_event();
    h.remove(line);
    let cancel = h.expect("CANCEL");
    let unreg = h.expect("REGISTER");
    assert_eq!(unreg.expires().unwrap(), Some(0));
    h.recv(&reply(&unreg, 200, Some("reg"), &[], None));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
    // The cancelled INVITE finishes without the line.
    h.recv(&reply(&cancel, 200, None, &[], None));
    h.recv(&reply(&inv, 487, Some("callee"), &[], None));
    h.expect("ACK");
    h.assert_quiet();
}

#[test]
fn remove_before_any_provisional_still_cancels_after_closed() {
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
    h.remove(line);
    // Anonymous, nothing in flight of its own: closed at once.
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
    h.assert_quiet();
    h.recv(&reply(&inv, 183, Some("callee"), &[], None));
    h.expect("CANCEL");
    // A 2xx that crossed the CANCEL: ACK and BYE.
    h.recv(&reply(
        &inv,
        200,
        Some("callee"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(1, &[])),
    ));
    h.expect("ACK");
    h.expect("BYE");
    h.assert_quiet();
}

#[test]
fn remove_in_a_call_byes_then_unregisters() {
    let mut h = H::new();
    let (line, _) = h.registered_line("alice@example.com");
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
        Some("callee"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(1, &[])),
    ));
    h.expect("ACK");
    h.next_media();
    h.next_event();
    h.remove(line);
    // seed-spec §8 item 6: BYE first, then REGISTER with Expires: 0.
    let bye = h.expect("BYE");
    let unreg = h.expect("REGISTER");
    assert_eq!(unreg.expires().unwrap(), Some(0));
    assert_eq!(h.next_media(), MediaCommand::Stop);
    h.recv(&reply(&unreg, 200, Some("reg"), &[], None));
    // Waits for the BYE's response too.
    assert!(h.events.is_empty());
    h.recv(&reply(&bye, 200, None, &[], None));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
}

#[test]
fn remove_with_a_silent_callee_is_bounded() {
    let mut h = H::new();
    let (line, _) = h.registered_line("alice@example.com");
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
        Some("callee"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(&pcmu_sdp(1, &[])),
    ));
    h.expect("ACK");
    h.remove(line);
    h.advance(Duration::from_millis(4_999));
    assert!(!h.events.iter().any(|(_, e)| *e == LineEvent::Closed));
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.events.back().map(|(_, e)| e.clone()),
        Some(LineEvent::Closed)
    );
}

#[test]
fn remove_during_incoming_ringing_answers_480() {
    let mut h = H::new();
    let (line, user) = h.registered_line("alice@example.com");
    h.recv(&incoming_invite(
        &format!("sip:{user}@192.0.2.1:5060"),
        "in1",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    let ring = h.expect("180");
    h.next_event();
    h.remove(line);
    let r = h.expect("480");
    assert_eq!(to_tag(&r), to_tag(&ring));
    let unreg = h.expect("REGISTER");
    h.recv(&reply(&unreg, 200, Some("reg"), &[], None));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
    // New calls for the gone contact: 404.
    h.recv(&incoming_invite(
        &format!("sip:{user}@192.0.2.1:5060"),
        "in2",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("404");
}

#[test]
fn remove_after_accept_before_ack_byes_once_acked() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    h.recv(&incoming_invite(
        "sip:alice@192.0.2.1:5060",
        "in3",
        &pcmu_sdp(1, &[]),
    ));
    h.expect("100");
    h.expect("180");
    h.next_event();
    h.command(line, accept_pcmu());
    let ok = h.expect("200");
    h.remove(line);
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
    // RFC 3261 §15: no BYE before the ACK; the 2xx keeps being retransmitted.
    h.assert_quiet();
    h.advance(Duration::from_millis(500));
    h.expect("200");
    let tag = to_tag(&ok);
    h.recv(&in_dialog("ACK", "sip:a@x", "in3", &tag, 1, "ack", &[], ""));
    let bye = h.expect("BYE");
    assert_eq!(bye.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(bye.header(HeaderName::CallId), Some("in3"));
    h.assert_quiet();
    h.advance(Duration::from_secs(60));
    assert!(h.sent_kinds().iter().all(|k| k == "BYE"));
}

#[test]
fn commands_after_remove_are_ignored() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    h.remove(line);
    h.next_event();
    h.command(line, Command::Bye);
    h.command(
        line,
        Command::Invite {
            dest: "bob@example.com".into(),
            codecs: vec![],
            rtp: addr(RTP),
            video: None,
        },
    );
    h.remove(line);
    h.assert_quiet();
    assert_eq!(h.stack.line_count(), 0);
    assert_eq!(h.stack.poll_timeout(), None);
}

#[test]
fn many_lines_share_one_stack() {
    let mut h = H::new();
    let mut lines = Vec::new();
    for i in 0..200 {
        let line = h.line_with(&format!("user{i}@example.com"), Some("pw"), |c| {
            c.register_expires = 60
        });
        let reg = h.expect("REGISTER");
        h.recv(&reply(&reg, 200, Some("r"), &[("Expires", "60")], None));
        h.next_event();
        lines.push(line);
    }
    h.advance(Duration::from_secs(57));
    let refreshes: Vec<_> = h.sent.drain(..).map(|(_, m)| m).collect();
    assert_eq!(refreshes.len(), 200);
    // Each line has its own Call-ID and Contact.
    let mut ids: Vec<_> = refreshes
        .iter()
        .map(|m| m.call_id().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    for r in &refreshes {
        h.recv(&reply(r, 200, Some("r"), &[("Expires", "60")], None));
    }
    h.assert_quiet();
    for l in lines {
        h.remove(l);
    }
    assert_eq!(h.sent_kinds().len(), 200);
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.event_list()
            .iter()
            .filter(|e| **e == LineEvent::Closed)
            .count(),
        200
    );
    assert_eq!(h.stack.line_count(), 0);
}
