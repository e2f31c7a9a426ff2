//! Recorded SDP from real products: parse → print is byte-identical, and the typed
//! views read what the products meant.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns load fixtures

use std::net::SocketAddr;

use switchboard_sdp::{Direction, Format, MediaKind, parse};

const FILES: &[&str] = &[
    "chromium_offer.sdp",
    "asterisk_offer.sdp",
    "baresip_offer.sdp",
    "linphone_offer.sdp",
    "gateway_default_offer.sdp",
    "gateway_codec_list_offer.sdp",
    "hold_sendonly.sdp",
    "hold_legacy_c0.sdp",
    "t38_declined_offer.sdp",
    "t38_reinvite.sdp",
];

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn every_recording_round_trips_byte_for_byte() {
    for name in FILES {
        let bytes = load(name);
        assert!(
            bytes.windows(2).any(|w| w == b"\r\n"),
            "{name} must be CRLF"
        );
        let session = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&session.to_bytes()),
            String::from_utf8_lossy(&bytes),
            "{name}"
        );
        assert_eq!(session.to_string().as_bytes(), &bytes[..], "{name} Display");
        // And again from our own output.
        assert_eq!(parse(&session.to_bytes()).unwrap(), session, "{name}");
    }
}

#[test]
fn bare_lf_input_is_accepted_and_printed_with_crlf() {
    let crlf = load("asterisk_offer.sdp");
    let lf: Vec<u8> = crlf.iter().copied().filter(|b| *b != b'\r').collect();
    let session = parse(&lf).unwrap();
    assert_eq!(session.to_bytes(), crlf);
}

#[test]
fn unknown_attributes_and_m_lines_are_kept() {
    let session = parse(&load("t38_declined_offer.sdp")).unwrap();
    assert_eq!(session.media_count(), 2);
    let image = session.media(1).unwrap();
    assert_eq!(image.kind(), MediaKind::Other("image".into()));
    assert!(image.is_rejected());
    assert!(!image.is_rtp());
    assert_eq!((image.proto(), image.fmt()), ("udptl", "t38"));
    assert!(image.formats().is_empty());
    assert_eq!(
        image.attribute("T38FaxUdpEC"),
        Some(Some("t38UDPRedundancy"))
    );
    let text = session.to_string();
    assert!(text.contains("\r\nm=image 0 udptl t38\r\n"));
    assert!(text.contains("\r\na=silenceSupp:off - - - -\r\n"));
}

#[test]
fn chromium_offer_typed_view() {
    let session = parse(&load("chromium_offer.sdp")).unwrap();
    assert_eq!(session.session_id(), "4611731400430051336");
    assert_eq!(session.version(), 2);
    assert_eq!(session.connection_address(), None);
    let audio = session.media(0).unwrap();
    assert_eq!(audio.kind(), MediaKind::Audio);
    assert_eq!(audio.proto(), "UDP/TLS/RTP/SAVPF");
    assert!(audio.is_rtp());
    assert_eq!(audio.payload_types(), vec![111, 63, 9, 0, 8, 13, 110, 126]);
    let formats = audio.formats();
    assert_eq!(
        formats[0],
        Format::new(111, "opus", 48000)
            .with_channels(2)
            .with_fmtp("minptime=10;useinbandfec=1")
    );
    assert_eq!(formats[2], Format::new(9, "G722", 8000));
    assert_eq!(formats[7], Format::new(126, "telephone-event", 8000));
    assert_eq!(audio.mid(), Some("0"));
    assert!(audio.rtcp_mux());
    let rtcp = audio.rtcp().unwrap();
    assert_eq!((rtcp.port, rtcp.address.as_deref()), (9, Some("0.0.0.0")));
    assert_eq!(audio.rtp_addr(), Some(addr("203.0.113.77:54321")));
    // a=rtcp with the 0.0.0.0 placeholder address falls back to c=.
    assert_eq!(audio.rtcp_addr(), Some(addr("203.0.113.77:9")));
    assert_eq!(audio.direction(), Direction::SendRecv);
    assert!(!audio.is_hold());
    assert!(!session.is_hold());
    let video = session.media(1).unwrap();
    assert_eq!(video.kind(), MediaKind::Video);
    assert_eq!(video.formats().len(), 17);
    assert_eq!(
        video.fmtp(104),
        Some("level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f")
    );
}

#[test]
fn chromium_trickle_placeholder_address_is_not_a_hold() {
    let text = String::from_utf8(load("chromium_offer.sdp"))
        .unwrap()
        .replace("c=IN IP4 203.0.113.77", "c=IN IP4 0.0.0.0")
        .replace("m=audio 54321", "m=audio 9")
        .replace("m=video 54321", "m=video 9");
    let session = parse(text.as_bytes()).unwrap();
    assert!(
        !session.is_hold(),
        "ICE offers use 0.0.0.0 as a placeholder"
    );
    assert_eq!(session.media(0).unwrap().rtp_addr(), None);
}

#[test]
fn asterisk_offer_typed_view() {
    let session = parse(&load("asterisk_offer.sdp")).unwrap();
    assert_eq!(session.connection_address(), Some("192.0.2.10"));
    let audio = session.media(0).unwrap();
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.maxptime(), Some(150));
    assert_eq!(audio.declared_direction(), Some(Direction::SendRecv));
    assert_eq!(audio.fmtp(101), Some("0-16"));
    assert_eq!(audio.rtp_addr(), Some(addr("192.0.2.10:14358")));
    assert_eq!(audio.rtcp_addr(), Some(addr("192.0.2.10:14359")));
    let names: Vec<_> = audio.formats().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["PCMU", "PCMA", "GSM", "telephone-event"]);
}

#[test]
fn linphone_static_payload_type_without_rtpmap_and_rtcp_port() {
    let session = parse(&load("linphone_offer.sdp")).unwrap();
    let audio = session.media(0).unwrap();
    assert!(audio.rtpmap(0).is_none());
    assert_eq!(audio.formats()[2], Format::new(0, "PCMU", 8000));
    assert_eq!(audio.formats()[0].fmtp.as_deref(), Some("vbr=on"));
    assert_eq!(audio.rtcp_addr(), Some(addr("192.168.1.20:7079")));
    assert_eq!(audio.attribute("rtcp-fb"), Some(Some("* trr-int 1000")));
    // Session-level attributes are inherited by the media view.
    assert_eq!(audio.attribute("record"), Some(Some("off")));
}

#[test]
fn hold_recordings_are_recognised() {
    let sendonly = parse(&load("hold_sendonly.sdp")).unwrap();
    assert!(sendonly.is_hold());
    assert!(switchboard_sdp::is_hold(&sendonly));
    let audio = sendonly.media(0).unwrap();
    assert_eq!(audio.direction(), Direction::SendOnly);
    assert_eq!(audio.fmtp(18), Some("annexb=no"));
    // a=fmtp before a=rtpmap (as Yealink writes it) still resolves.
    assert_eq!(audio.fmtp(101), Some("0-15"));

    let legacy = parse(&load("hold_legacy_c0.sdp")).unwrap();
    assert!(legacy.is_hold());
    let audio = legacy.media(0).unwrap();
    assert!(audio.is_legacy_hold());
    assert_eq!(audio.direction(), Direction::SendRecv);
    assert_eq!(audio.effective_direction(), Direction::SendOnly);
    assert_eq!(audio.rtp_addr(), None);

    for name in [
        "asterisk_offer.sdp",
        "baresip_offer.sdp",
        "linphone_offer.sdp",
    ] {
        assert!(!parse(&load(name)).unwrap().is_hold(), "{name}");
    }
}

#[test]
fn gateway_recording_keeps_fmtp_before_rtpmap() {
    let session = parse(&load("gateway_codec_list_offer.sdp")).unwrap();
    let video = session.media(1).unwrap();
    assert_eq!(video.payload_types(), vec![99, 97]);
    assert_eq!(
        video.formats()[0],
        Format::new(99, "h264", 90000).with_fmtp("profile-level-id=420014;packetization-mode=1")
    );
    let text = session.to_string();
    assert!(text.contains(
        "a=fmtp:99 profile-level-id=420014;packetization-mode=1\r\na=rtpmap:99 h264/90000\r\n"
    ));
    // The o= address is a host name in the original; it is kept as written.
    assert!(text.contains("o=- 1247291077 1247291077 IN IP4 Macintosh-2.local\r\n"));
}
