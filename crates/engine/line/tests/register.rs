//! Registration: digest, refresh timing, refresh failure, 423, timeout, unregister.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::HeaderName;
use sip::auth::{Algorithm, Credentials, compute_response};
use switchboard_line::LineEvent;

const CHALLENGE: &str =
    "Digest realm=\"example.com\", nonce=\"n0nce1\", qop=\"auth\", algorithm=MD5";

fn check_digest<'a>(
    m: &'a sip::Message,
    header: HeaderName,
    method: &str,
    nonce: &str,
) -> Credentials<'a> {
    let c = Credentials::parse(m.header(header).expect("credentials")).unwrap();
    assert_eq!(c.username, "alice");
    assert_eq!(c.realm, "example.com");
    assert_eq!(c.nonce, nonce);
    let expected = compute_response(
        Algorithm::Md5,
        "alice",
        "example.com",
        "secret",
        nonce,
        c.cnonce.as_deref(),
        c.nc,
        c.qop.as_deref(),
        method,
        &c.uri,
    );
    assert_eq!(c.response, expected, "digest response");
    c
}

#[test]
fn register_with_401_challenge_then_refresh_at_57s() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("secret"), |c| {
        c.display_name = Some("Alice".into());
        c.register_expires = 60;
    });
    let (flow, reg) = h.next_sent_flow();
    assert_eq!(flow.remote, addr(PROXY));
    assert_eq!(reg.uri_str(), "sip:example.com");
    assert_eq!(
        reg.header(HeaderName::From).unwrap().split(";tag=").next(),
        Some("\"Alice\" <sip:alice@example.com>")
    );
    assert_eq!(
        reg.header(HeaderName::To).unwrap(),
        "\"Alice\" <sip:alice@example.com>"
    );
    let contact = reg.header(HeaderName::Contact).unwrap().to_string();
    assert!(
        contact.starts_with("<sip:alice-") && contact.ends_with("@192.0.2.1:5060;transport=udp>"),
        "{contact}"
    );
    assert_eq!(reg.expires().unwrap(), Some(60));
    assert_eq!(reg.cseq().unwrap().seq, 1);
    assert_eq!(reg.max_forwards().unwrap(), Some(70));
    assert!(reg.header(HeaderName::Authorization).is_none());

    h.recv(&reply(
        &reg,
        401,
        Some("r1"),
        &[("WWW-Authenticate", CHALLENGE)],
        None,
    ));
    let reg2 = h.expect("REGISTER");
    assert_eq!(reg2.cseq().unwrap().seq, 2);
    assert_ne!(branch(&reg2), branch(&reg));
    assert_eq!(reg2.call_id().unwrap(), reg.call_id().unwrap());
    assert_eq!(reg2.header(HeaderName::Contact).unwrap(), contact);
    let c = check_digest(&reg2, HeaderName::Authorization, "REGISTER", "n0nce1");
    assert_eq!(c.uri, "sip:example.com");
    assert_eq!(c.qop.as_deref(), Some("auth"));
    assert!(h.events.is_empty());

    h.recv(&reply(
        &reg2,
        200,
        Some("r1"),
        &[("Contact", &format!("{contact};expires=60"))],
        None,
    ));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 60 })
    );
    h.assert_quiet();

    // interval - min(interval/20, 5 s) = 57 s (seed-spec §8 item 5).
    h.advance(Duration::from_millis(56_999));
    h.assert_quiet();
    h.advance(Duration::from_millis(1));
    let refresh = h.expect("REGISTER");
    assert_eq!(refresh.cseq().unwrap().seq, 3);
    assert_eq!(refresh.call_id().unwrap(), reg.call_id().unwrap());
    // The answered challenge is reused with the next nonce count.
    let c = check_digest(&refresh, HeaderName::Authorization, "REGISTER", "n0nce1");
    assert_eq!(c.nc, Some(2));
    h.recv(&reply(
        &refresh,
        200,
        Some("r1"),
        &[("Expires", "60")],
        None,
    ));
    // Refreshes are silent.
    h.assert_quiet();
    h.advance(Duration::from_secs(57));
    h.expect("REGISTER");
}

#[test]
fn second_401_fails_registration() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("wrong"));
    let reg = h.expect("REGISTER");
    h.recv(&reply(
        &reg,
        401,
        Some("r"),
        &[("WWW-Authenticate", CHALLENGE)],
        None,
    ));
    let reg2 = h.expect("REGISTER");
    let again = "Digest realm=\"example.com\", nonce=\"n0nce2\", qop=\"auth\"";
    h.recv(&reply(
        &reg2,
        401,
        Some("r"),
        &[("WWW-Authenticate", again)],
        None,
    ));
    assert_eq!(
        h.event_list(),
        vec![LineEvent::RegistrationFailed {
            code: 401,
            reason: "Unauthorized".into()
        }]
    );
    let _ = line;
    h.assert_quiet();
}

#[test]
fn stale_nonce_is_answered_again() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    let reg = h.expect("REGISTER");
    h.recv(&reply(
        &reg,
        401,
        Some("r"),
        &[("WWW-Authenticate", CHALLENGE)],
        None,
    ));
    let reg2 = h.expect("REGISTER");
    let stale = "Digest realm=\"example.com\", nonce=\"n0nce2\", qop=\"auth\", stale=true";
    h.recv(&reply(
        &reg2,
        401,
        Some("r"),
        &[("WWW-Authenticate", stale)],
        None,
    ));
    let reg3 = h.expect("REGISTER");
    assert_eq!(reg3.cseq().unwrap().seq, 3);
    check_digest(&reg3, HeaderName::Authorization, "REGISTER", "n0nce2");
    h.recv(&reply(&reg3, 200, Some("r"), &[("Expires", "600")], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 600 })
    );
}

#[test]
fn proxy_challenge_407_on_register() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    let reg = h.expect("REGISTER");
    h.recv(&reply(
        &reg,
        407,
        Some("r"),
        &[("Proxy-Authenticate", CHALLENGE)],
        None,
    ));
    let reg2 = h.expect("REGISTER");
    check_digest(&reg2, HeaderName::ProxyAuthorization, "REGISTER", "n0nce1");
    h.recv(&reply(&reg2, 200, Some("r"), &[], None));
    // No Contact expires and no Expires header: the requested interval.
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 600 })
    );
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("secret"), |c| {
        c.register_expires = 30
    });
    let reg = h.expect("REGISTER");
    assert_eq!(reg.expires().unwrap(), Some(30));
    h.recv(&reply(
        &reg,
        423,
        Some("r"),
        &[("Min-Expires", "120")],
        None,
    ));
    let reg2 = h.expect("REGISTER");
    assert_eq!(reg2.expires().unwrap(), Some(120));
    assert_eq!(reg2.cseq().unwrap().seq, 2);
    h.recv(&reply(&reg2, 200, Some("r"), &[("Expires", "120")], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 120 })
    );
    h.advance(Duration::from_secs(115));
    let refresh = h.expect("REGISTER");
    assert_eq!(refresh.expires().unwrap(), Some(120));
}

#[test]
fn refresh_failure_is_reported_and_retried() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("secret"), |c| {
        c.register_expires = 60
    });
    let reg = h.expect("REGISTER");
    h.recv(&reply(&reg, 200, Some("r"), &[("Expires", "60")], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 60 })
    );
    h.advance(Duration::from_secs(57));
    let refresh = h.expect("REGISTER");
    h.recv(&reply(
        &refresh,
        403,
        Some("r"),
        &[("Retry-After", "10")],
        None,
    ));
    assert_eq!(
        h.event_list(),
        vec![LineEvent::RegistrationLost {
            code: 403,
            reason: "Forbidden".into()
        }]
    );
    h.advance(Duration::from_millis(9_999));
    h.assert_quiet();
    h.advance(Duration::from_millis(1));
    let retry = h.expect("REGISTER");
    h.recv(&reply(&retry, 200, Some("r"), &[("Expires", "60")], None));
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 60 })
    );
}

#[test]
fn refresh_timeout_is_reported() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("secret"), |c| {
        c.register_expires = 60
    });
    let reg = h.expect("REGISTER");
    h.recv(&reply(&reg, 200, Some("r"), &[("Expires", "60")], None));
    h.next_event();
    h.advance(Duration::from_secs(57));
    h.expect("REGISTER");
    // Retransmissions until Timer F (64*T1 = 32 s), then 408.
    h.advance(Duration::from_secs(32));
    assert!(h.sent_kinds().iter().all(|k| k == "REGISTER"));
    assert_eq!(
        h.event_list(),
        vec![LineEvent::RegistrationLost {
            code: 408,
            reason: "Request Timeout".into()
        }]
    );
    let _ = line;
}

#[test]
fn initial_timeout_fails_registration() {
    let mut h = H::new();
    h.line("alice@example.com", Some("secret"));
    h.advance(Duration::from_millis(31_999));
    assert!(h.events.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.event_list(),
        vec![LineEvent::RegistrationFailed {
            code: 408,
            reason: "Request Timeout".into()
        }]
    );
}

#[test]
fn anonymous_line_sends_nothing() {
    let mut h = H::new();
    let line = h.line("anonymous@invalid", None);
    let line2 = h.line("bob@example.com", Some(""));
    h.assert_quiet();
    h.remove(line);
    h.remove(line2);
    assert_eq!(
        h.events.drain(..).collect::<Vec<_>>(),
        vec![(line, LineEvent::Closed), (line2, LineEvent::Closed)]
    );
    assert!(h.sent.is_empty());
}

#[test]
fn register_locates_the_domain_without_a_proxy() {
    let mut h = H::new();
    let line = h.line_with("alice@example.com", Some("secret"), |c| {
        c.outbound_proxy = None
    });
    assert!(h.sent.is_empty());
    let r = h.resolves.pop_front().expect("resolve request");
    assert_eq!(r.host, "example.com");
    assert_eq!(r.port, None);
    assert_eq!(r.transport, Some(sip::Transport::Udp));
    assert!(!r.secure);
    let target = addr("203.0.113.5:5080");
    h.stack.resolved(
        h.now,
        r.id,
        &[
            (sip::Transport::Tcp, addr("203.0.113.9:5060")),
            (sip::Transport::Udp, target),
        ],
    );
    h.pump();
    let (flow, reg) = h.next_sent_flow();
    assert_eq!(flow.remote, target);
    h.recv_from(&reply(&reg, 200, Some("r"), &[], None), "203.0.113.5:5080");
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Registered { expires: 600 })
    );
    // The located target is reused by the next line of the same domain.
    h.line_with("bob@example.com", Some("secret"), |c| {
        c.outbound_proxy = None
    });
    assert!(h.resolves.is_empty());
    assert_eq!(h.next_sent_flow().0.remote, target);
}

#[test]
fn unresolvable_domain_fails_with_503() {
    let mut h = H::new();
    h.line_with("alice@nowhere.invalid", Some("secret"), |c| {
        c.outbound_proxy = None
    });
    let r = h.resolves.pop_front().unwrap();
    h.stack.resolved(h.now, r.id, &[]);
    h.pump();
    assert_eq!(
        h.event_list(),
        vec![LineEvent::RegistrationFailed {
            code: 503,
            reason: "Service unavailable - cannot resolve DNS target".into()
        }]
    );
}

#[test]
fn unregister_on_remove() {
    let mut h = H::new();
    let (line, _) = h.registered_line("alice@example.com");
    h.remove(line);
    let unreg = h.expect("REGISTER");
    assert_eq!(unreg.expires().unwrap(), Some(0));
    assert!(h.events.is_empty());
    h.recv(&reply(&unreg, 200, Some("reg"), &[], None));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
    h.advance(Duration::from_secs(3600));
    h.assert_quiet();
}

#[test]
fn remove_is_bounded_when_the_registrar_is_silent() {
    let mut h = H::new();
    let (line, _) = h.registered_line("alice@example.com");
    h.remove(line);
    h.expect("REGISTER");
    h.advance(Duration::from_millis(4_999));
    assert!(h.events.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
}

#[test]
fn remove_during_initial_register_unregisters_after_it() {
    let mut h = H::new();
    let line = h.line("alice@example.com", Some("secret"));
    let reg = h.expect("REGISTER");
    h.remove(line);
    h.assert_quiet();
    h.recv(&reply(&reg, 200, Some("r"), &[("Expires", "600")], None));
    let unreg = h.expect("REGISTER");
    assert_eq!(unreg.expires().unwrap(), Some(0));
    assert_eq!(unreg.cseq().unwrap().seq, 2);
    h.recv(&reply(&unreg, 200, Some("r"), &[], None));
    assert_eq!(h.event_list(), vec![LineEvent::Closed]);
}
