//! Calls from WebRTC SIP clients (JsSIP, SIP.js: DTLS-SRTP offers, RFC 5764) to a line
//! whose front answers them with a WebRTC endpoint of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sip::HeaderName;
use switchboard_line::{Command, LineEvent};

fn ruri(user: &str) -> String {
    format!("sip:{user}@192.0.2.1:5060;transport=udp")
}

/// A browser's offer as JsSIP sends it (ICE, DTLS fingerprint, rtcp-mux, Opus first).
fn webrtc_offer(version: u32, direction: &str) -> String {
    [
        "v=0",
        &format!("o=- 4611731400430051336 {version} IN IP4 127.0.0.1"),
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host",
        "a=ice-ufrag:Zx3b",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=fingerprint:sha-256 9E:0F:2C:11:7D:54:8A:33:60:1B:AA:C4:E2:75:09:DF:31:6B:48:F0:0C:9A:27:5E:83:D1:44:B6:19:70:EE:02",
        "a=setup:actpass",
        "a=mid:0",
        &format!("a={direction}"),
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:126 telephone-event/8000",
        "",
    ]
    .join("\r\n")
}

/// What the front's WebRTC endpoint answers (ICE-lite, DTLS server).
fn front_answer() -> String {
    [
        "v=0",
        "o=str0m-123 7 2 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=ice-lite",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2130706175 127.0.0.1 41000 typ host",
        "a=ice-ufrag:FrOn",
        "a=ice-pwd:front0123456789abcdefgh",
        "a=fingerprint:sha-256 11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF:11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF",
        "a=setup:passive",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "",
    ]
    .join("\r\n")
}

#[test]
fn a_webrtc_offer_gets_488_when_the_front_cannot_answer_it() {
    let mut h = H::new();
    let (_, user) = h.registered_line("alice@example.com");
    h.recv(&incoming_invite(
        &ruri(&user),
        "w0",
        &webrtc_offer(1, "sendrecv"),
    ));
    h.expect("100");
    h.expect("488");
    h.assert_quiet();
}

#[test]
fn a_webrtc_call_is_answered_with_the_fronts_sdp_and_runs_no_media_of_the_line() {
    let mut h = H::new();
    let (line, user) = h.registered_line_with("alice@example.com", |c| c.webrtc_offers = true);
    let offer = webrtc_offer(1, "sendrecv");
    h.recv(&incoming_invite(&ruri(&user), "w1", &offer));
    h.expect("100");
    let ring = h.expect("180");
    let tag = to_tag(&ring);
    assert_eq!(h.next_event(), (line, LineEvent::WebRtcOffer(offer)));
    assert!(matches!(h.next_event(), (l, LineEvent::Invited { .. }) if l == line));

    // The front's answer goes out as written.
    h.command(
        line,
        Command::AcceptWebRtc {
            answer: front_answer(),
        },
    );
    let ok = h.expect("200");
    assert_eq!(body_text(&ok), front_answer());
    assert!(ok.header(HeaderName::Contact).is_some());
    h.recv(&in_dialog(
        "ACK",
        "sip:alice@192.0.2.1",
        "w1",
        &tag,
        1,
        "wack1",
        &[],
        "",
    ));
    // No MediaCommand: the front carries the media.
    assert_eq!(
        h.next_event(),
        (line, LineEvent::Accepted(Some((Some("opus".into()), None))))
    );
    h.assert_quiet();

    // The caller holds: our answer is the same session, recvonly, a version later.
    h.recv(&in_dialog(
        "INVITE",
        "sip:alice@192.0.2.1",
        "w1",
        &tag,
        2,
        "wre1",
        &[],
        &webrtc_offer(2, "sendonly"),
    ));
    h.expect("100");
    let ok = h.expect("200");
    let answer = body_text(&ok);
    assert!(answer.contains("a=recvonly\r\n"), "{answer}");
    assert!(answer.contains("a=ice-ufrag:FrOn\r\n"), "{answer}");
    assert!(answer.contains("a=setup:passive\r\n"), "{answer}");
    assert!(answer.contains("UDP/TLS/RTP/SAVPF 111"), "{answer}");
    assert_eq!(sdp_of(&ok).version(), 3);
    h.recv(&in_dialog(
        "ACK",
        "sip:alice@192.0.2.1",
        "w1",
        &tag,
        2,
        "wack2",
        &[],
        "",
    ));
    assert_eq!(h.next_event(), (line, LineEvent::Holded(true)));
    h.assert_quiet();

    // A re-offer that changes the m-lines is refused; the call goes on.
    let two_lines = format!(
        "{}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
        webrtc_offer(3, "sendrecv")
    );
    h.recv(&in_dialog(
        "INVITE",
        "sip:alice@192.0.2.1",
        "w1",
        &tag,
        3,
        "wre2",
        &[],
        &two_lines,
    ));
    h.expect("100");
    h.expect("488");

    // DTMF goes by INFO: the line has no RTP session to carry RFC 4733.
    h.command(line, Command::SendDtmf('5'));
    let info = h.expect("INFO");
    assert!(body_text(&info).contains("Signal=5"));
    h.recv(&reply(&info, 200, None, &[], None));

    // The caller hangs up: byed, still no media command.
    h.recv(&in_dialog(
        "BYE",
        "sip:alice@192.0.2.1",
        "w1",
        &tag,
        4,
        "wbye",
        &[],
        "",
    ));
    h.expect("200");
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    h.assert_quiet();
}

#[test]
fn an_answer_that_is_not_webrtc_is_refused_with_488() {
    let mut h = H::new();
    let (line, user) = h.registered_line_with("alice@example.com", |c| c.webrtc_offers = true);
    h.recv(&incoming_invite(
        &ruri(&user),
        "w2",
        &webrtc_offer(1, "sendrecv"),
    ));
    h.expect("100");
    h.expect("180");
    h.next_event();
    h.next_event();
    h.command(
        line,
        Command::AcceptWebRtc {
            answer: pcmu_sdp(1, &[]),
        },
    );
    h.expect("488");
    assert_eq!(h.next_event(), (line, LineEvent::Byed));
    h.assert_quiet();
}
