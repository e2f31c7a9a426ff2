//! Seed-spec §8 conformance scenarios that need timers, on the line core with virtual time
//! (the others run end to end through the gateway: crates/front/gateway/tests/
//! seed_conformance.rs). The table is in docs/conformance.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::HeaderName;
use switchboard_line::LineEvent;

/// §8.4: the registrar never answers → after ~32 s (Timer F = 64·T1) the connect is
/// refused with "408 Request timeout". Ours (docs/compatibility.md): the RFC 3261 phrase
/// "Request Timeout" (the gateway's `Connect.Rejected` description is "408 Request
/// Timeout").
#[test]
fn seed_8_04_silent_registrar_fails_with_408_after_32s() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("pw"));
    let reg = h.expect("REGISTER");
    // Retransmissions only (Timer E), nothing for the client, until 32 s.
    h.advance(Duration::from_millis(31_900));
    while let Some((_, m)) = h.sent.pop_front() {
        assert_eq!(describe(&m), "REGISTER");
        assert_eq!(branch(&m), branch(&reg), "a retransmission");
    }
    assert!(h.events.is_empty(), "{:?}", h.events);
    h.advance(Duration::from_millis(100));
    h.sent
        .retain(|(_, m)| describe(m) == "REGISTER" && branch(m) != branch(&reg));
    assert_eq!(
        h.next_event(),
        (
            line,
            LineEvent::RegistrationFailed {
                code: 408,
                reason: "Request Timeout".into()
            }
        )
    );
    h.assert_quiet();
}

/// §8.5: the registrar's 200 carries `Expires: 60` (top-level header, no Contact
/// parameter) → a refresh REGISTER 57 s later (interval − min(5 %, 5 s)), same Call-ID
/// and Contact, next CSeq.
#[test]
fn seed_8_05_expires_60_refreshes_after_57s() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("pw"), |c| {
        c.display_name = Some("Alice".into());
    });
    let reg = h.expect("REGISTER");
    h.recv(&reply(&reg, 200, Some("r"), &[("Expires", "60")], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 60 })
    );
    h.advance(Duration::from_millis(56_900));
    h.assert_quiet();
    h.advance(Duration::from_millis(100));
    let refresh = h.expect("REGISTER");
    assert_eq!(refresh.call_id().unwrap(), reg.call_id().unwrap());
    assert_eq!(refresh.cseq().unwrap().seq, reg.cseq().unwrap().seq + 1);
    assert_eq!(
        refresh.header(HeaderName::Contact),
        reg.header(HeaderName::Contact)
    );
    assert_ne!(branch(&refresh), branch(&reg));
    h.recv(&reply(&refresh, 200, Some("r"), &[("Expires", "60")], None));
    h.assert_quiet();
}
