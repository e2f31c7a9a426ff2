//! RFC 3264 offer/answer against recorded offers from real products, the UAC side,
//! and re-offers for hold.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns load fixtures

use std::net::SocketAddr;

use switchboard_sdp::{
    AnswerParams, Capabilities, Direction, Format, LocalMedia, MediaKind, SdpError, Session,
    answer, apply_answer, capabilities_from_codec_list, is_hold, offer, parse, reoffer,
    reoffer_with_direction,
};

fn load(name: &str) -> Session {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn params(ports: &[u16]) -> AnswerParams {
    AnswerParams {
        addr: "192.0.2.1".parse().unwrap(),
        ports: ports.to_vec(),
        session_id: 3_900_000_000,
        session_version: 3_900_000_000,
    }
}

fn lines(s: &Session) -> Vec<String> {
    s.to_string().lines().map(str::to_owned).collect()
}

/// The lines of m-block `index` (the m= line and what follows it).
fn block(s: &Session, index: usize) -> Vec<String> {
    let all = lines(s);
    let starts: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    let end = starts.get(index + 1).copied().unwrap_or(all.len());
    all[starts[index]..end].to_vec()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn audio(formats: Vec<Format>) -> LocalMedia {
    LocalMedia::new(MediaKind::Audio, formats)
}

#[test]
fn asterisk_offer_answered_with_g711_and_dtmf() {
    let local = capabilities_from_codec_list(&["pcmu", "pcma", "dtmf"], false, false);
    let (ans, neg) = answer(&load("asterisk_offer.sdp"), &local, &params(&[20000])).unwrap();
    assert_eq!(
        lines(&ans),
        [
            "v=0",
            "o=- 3900000000 3900000000 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 20000 RTP/AVP 0 8 101",
            // The offer's own rtpmap spelling is echoed.
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendrecv",
        ]
    );
    let a = neg.audio().unwrap();
    assert_eq!(a.codec, Some(Format::new(0, "PCMU", 8000)));
    assert_eq!(a.telephone_event, Some(101));
    assert_eq!((a.ptime, a.maxptime), (Some(20), Some(150)));
    assert_eq!(a.remote_rtp, Some(addr("192.0.2.10:14358")));
    assert_eq!(a.remote_rtcp, Some(addr("192.0.2.10:14359")));
    assert_eq!(a.direction, Direction::SendRecv);
    assert!(!a.remote_hold && !a.rtcp_mux);
    assert_eq!(a.local_media, Some(0));
    assert_eq!(a.local_port, 20000);
}

#[test]
fn asterisk_offer_against_speex_only_gateway_is_488() {
    // seed-spec §7.3: Asterisk with default settings fails with 488 without a transcoder.
    let local = capabilities_from_codec_list(&[], false, false);
    let err = answer(
        &load("asterisk_offer.sdp"),
        &local,
        &params(&[20000, 20002]),
    )
    .unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
    assert_eq!(err.sip_status(), 488);
    // With the transcoder, the G.711 formats are there.
    let local = capabilities_from_codec_list(&[], true, false);
    let (ans, neg) = answer(
        &load("asterisk_offer.sdp"),
        &local,
        &params(&[20000, 20002]),
    )
    .unwrap();
    assert_eq!(block(&ans, 0)[0], "m=audio 20000 RTP/AVP 0 8 101");
    assert_eq!(neg.audio().unwrap().codec.as_ref().unwrap().pt, 0);
}

#[test]
fn baresip_offer_answer_renumbers_our_fmtp_to_the_offer() {
    let local = Capabilities {
        media: vec![audio(vec![
            Format::new(111, "opus", 48000)
                .with_channels(2)
                .with_fmtp("useinbandfec=1"),
            Format::new(9, "G722", 8000),
            Format::new(0, "PCMU", 8000),
            Format::new(100, "telephone-event", 8000).with_fmtp("0-15"),
        ])],
    };
    let (ans, neg) = answer(&load("baresip_offer.sdp"), &local, &params(&[30000])).unwrap();
    assert_eq!(
        block(&ans, 0),
        [
            "m=audio 30000 RTP/AVP 96 9 0 101",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=sendrecv",
        ]
    );
    let a = neg.audio().unwrap();
    assert_eq!(
        a.codec,
        Some(
            Format::new(96, "opus", 48000)
                .with_channels(2)
                .with_fmtp("stereo=1;sprop-stereo=1")
        ),
        "the codec carries the offer's pt and the offerer's fmtp"
    );
    assert_eq!(a.telephone_event, Some(101));
    assert_eq!(a.ptime, Some(20));
    assert_eq!(a.remote_rtp, Some(addr("10.0.0.23:11042")));
    assert_eq!(a.formats.len(), 4);
    assert_eq!(a.remote_formats.len(), 5);
}

#[test]
fn linphone_offer_answered_by_the_default_gateway() {
    let local = capabilities_from_codec_list(&[], false, false);
    let offer = load("linphone_offer.sdp");
    let (ans, neg) = answer(&offer, &local, &params(&[40000, 40002])).unwrap();
    assert_eq!(
        block(&ans, 0),
        [
            "m=audio 40000 RTP/AVP 96 101",
            "a=rtpmap:96 speex/16000",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendrecv",
        ]
    );
    assert_eq!(ans.media_count(), 1);
    let a = neg.audio().unwrap();
    assert_eq!(a.codec.as_ref().unwrap().rate, 16000);
    assert_eq!(a.remote_rtcp, Some(addr("192.168.1.20:7079")));

    // With narrowband listed too, speex/8000 keeps linphone's pt 97.
    let local = capabilities_from_codec_list(&["wideband", "narrowband", "dtmf"], false, false);
    let (ans, _) = answer(&offer, &local, &params(&[40000])).unwrap();
    assert_eq!(block(&ans, 0)[0], "m=audio 40000 RTP/AVP 96 97 101");
    assert!(block(&ans, 0).contains(&"a=rtpmap:97 speex/8000".to_owned()));
}

fn webrtc_capabilities() -> Capabilities {
    let srtp = |kind, formats| {
        let mut m = LocalMedia::new(kind, formats);
        m.protos = vec!["UDP/TLS/RTP/SAVPF".into()];
        m.rtcp_mux = true;
        m
    };
    Capabilities {
        media: vec![
            srtp(
                MediaKind::Audio,
                vec![
                    Format::new(100, "opus", 48000).with_channels(2),
                    Format::new(0, "PCMU", 8000),
                    Format::new(101, "telephone-event", 8000),
                ],
            ),
            srtp(
                MediaKind::Video,
                vec![Format::new(99, "h264", 90000).with_fmtp(switchboard_sdp::H264_FMTP)],
            ),
        ],
    }
}

#[test]
fn chromium_offer_answered_by_a_savpf_capable_side() {
    let (ans, neg) = answer(
        &load("chromium_offer.sdp"),
        &webrtc_capabilities(),
        &params(&[50000, 50002]),
    )
    .unwrap();
    assert_eq!(
        block(&ans, 0),
        [
            "m=audio 50000 UDP/TLS/RTP/SAVPF 111 0 126",
            "a=mid:0",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:126 telephone-event/8000",
            "a=sendrecv",
            "a=rtcp-mux",
        ]
    );
    // H.264 with packetization-mode=1 only (RFC 6184 §8.2.2), fmtp renumbered.
    assert_eq!(
        block(&ans, 1),
        [
            "m=video 50002 UDP/TLS/RTP/SAVPF 102 106",
            "a=mid:1",
            "a=rtpmap:102 H264/90000",
            "a=fmtp:102 profile-level-id=420014;packetization-mode=1",
            "a=rtpmap:106 H264/90000",
            "a=fmtp:106 profile-level-id=420014;packetization-mode=1",
            "a=sendrecv",
            "a=rtcp-mux",
        ]
    );
    let a = neg.audio().unwrap();
    assert_eq!(a.codec.as_ref().unwrap().pt, 111);
    assert_eq!(
        a.telephone_event,
        Some(126),
        "only the 8000 Hz event is common"
    );
    assert!(a.rtcp_mux);
    assert_eq!(a.remote_rtp, Some(addr("203.0.113.77:54321")));
    assert_eq!(a.remote_rtcp, a.remote_rtp);
    assert_eq!(neg.video().unwrap().codec.as_ref().unwrap().pt, 102);
}

#[test]
fn chromium_offer_against_plain_rtp_gateway_is_488() {
    // No SRTP on the gateway's SIP legs (seed-spec §7.1): every stream is rejected.
    let local = capabilities_from_codec_list(&["pcmu", "dtmf", "h264"], false, false);
    let err = answer(&load("chromium_offer.sdp"), &local, &params(&[1, 2])).unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
}

#[test]
fn t38_stream_is_echoed_with_port_0_and_line_count_kept() {
    let local = capabilities_from_codec_list(&["pcma", "pcmu", "dtmf"], false, false);
    let (ans, neg) = answer(&load("t38_declined_offer.sdp"), &local, &params(&[60000])).unwrap();
    assert_eq!(ans.media_count(), 2);
    assert_eq!(block(&ans, 0)[0], "m=audio 60000 RTP/AVP 8 0 101");
    assert_eq!(block(&ans, 1), ["m=image 0 udptl t38"]);
    assert!(neg.media[0].accepted && !neg.media[1].accepted);
    assert_eq!(neg.media[1].kind, MediaKind::Other("image".into()));
    assert_eq!(neg.audio().unwrap().ptime, Some(20));

    // A T.38-only re-offer cannot be accepted at all: 488.
    let err = answer(&load("t38_reinvite.sdp"), &local, &params(&[60000])).unwrap_err();
    assert_eq!(err.sip_status(), 488);
}

#[test]
fn unmatched_streams_get_port_0_with_the_offers_formats() {
    // Two audio m-lines and a video one; one local audio stream only.
    let text = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 0 8\r\n\
        m=audio 5006 RTP/AVP 0\r\n\
        m=video 5008 RTP/AVP 31 34\r\n\
        m=audio 0 RTP/AVP 0\r\n";
    let offer = parse(text.as_bytes()).unwrap();
    let local = Capabilities {
        media: vec![audio(vec![Format::new(8, "PCMA", 8000)])],
    };
    let (ans, neg) = answer(&offer, &local, &params(&[7000])).unwrap();
    assert_eq!(ans.media_count(), 4);
    assert_eq!(block(&ans, 0)[0], "m=audio 7000 RTP/AVP 8");
    assert_eq!(block(&ans, 1), ["m=audio 0 RTP/AVP 0"]);
    assert_eq!(block(&ans, 2), ["m=video 0 RTP/AVP 31 34"]);
    assert_eq!(block(&ans, 3), ["m=audio 0 RTP/AVP 0"]);
    assert_eq!(
        neg.media.iter().map(|m| m.accepted).collect::<Vec<_>>(),
        [true, false, false, false]
    );
    // Static payload types resolve without rtpmap; the answer names them.
    assert_eq!(block(&ans, 0)[1], "a=rtpmap:8 PCMA/8000");
}

#[test]
fn telephone_event_alone_is_not_acceptable() {
    // seed-spec §8.15 variant: PCMU plus telephone-event against speex and dtmf.
    let text = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let local = capabilities_from_codec_list(&["wideband", "dtmf"], false, false);
    let err = answer(&parse(text.as_bytes()).unwrap(), &local, &params(&[7000])).unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
}

#[test]
fn answer_directions_follow_rfc3264_6_1() {
    let local = capabilities_from_codec_list(&["pcmu", "pcma", "dtmf"], false, false);
    let with = |dir: &str| {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 5004 RTP/AVP 0\r\na={dir}\r\n"
        );
        let (ans, neg) =
            answer(&parse(text.as_bytes()).unwrap(), &local, &params(&[7000])).unwrap();
        let m = neg.audio().unwrap().clone();
        (
            block(&ans, 0).last().unwrap().clone(),
            m.direction,
            m.remote_hold,
        )
    };
    assert_eq!(
        with("sendrecv"),
        ("a=sendrecv".into(), Direction::SendRecv, false)
    );
    assert_eq!(
        with("sendonly"),
        ("a=recvonly".into(), Direction::RecvOnly, true)
    );
    assert_eq!(
        with("recvonly"),
        ("a=sendonly".into(), Direction::SendOnly, false)
    );
    assert_eq!(
        with("inactive"),
        ("a=inactive".into(), Direction::Inactive, true)
    );

    // Legacy hold (c=0.0.0.0): we will not send there.
    let (ans, neg) = answer(&load("hold_legacy_c0.sdp"), &local, &params(&[7000])).unwrap();
    assert!(lines(&ans).contains(&"a=recvonly".to_owned()));
    assert!(lines(&ans).contains(&"c=IN IP4 192.0.2.1".to_owned()));
    let a = neg.audio().unwrap();
    assert!(a.remote_hold);
    assert_eq!(a.remote_rtp, None);
    assert_eq!(a.remote_direction, Direction::SendOnly);
    assert!(neg.is_remote_hold());

    // A session-level direction is inherited by the stream.
    let (ans, _) = answer(&load("hold_sendonly.sdp"), &local, &params(&[7000])).unwrap();
    assert_eq!(block(&ans, 0).last().unwrap(), "a=recvonly");

    // A local sendonly stream limits the answer.
    let mut local = local.clone();
    local.media[0].direction = Direction::SendOnly;
    let (ans, _) = answer(&load("asterisk_offer.sdp"), &local, &params(&[7000])).unwrap();
    assert_eq!(block(&ans, 0).last().unwrap(), "a=sendonly");
}

#[test]
fn answer_copies_t_line_and_rejects_bad_arguments() {
    let text = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=3034423619 3042462419\r\n\
        m=audio 5004 RTP/AVP 0\r\n";
    let offer = parse(text.as_bytes()).unwrap();
    let local = capabilities_from_codec_list(&["pcmu"], false, false);
    let (ans, _) = answer(&offer, &local, &params(&[7000])).unwrap();
    assert!(lines(&ans).contains(&"t=3034423619 3042462419".to_owned()));
    assert_eq!(
        answer(&offer, &local, &params(&[])).unwrap_err(),
        SdpError::InvalidArgument("fewer ports than local streams")
    );
    // A local port of 0 disables the stream.
    assert_eq!(
        answer(&offer, &local, &params(&[0])).unwrap_err(),
        SdpError::NoAcceptableMedia
    );
}

#[test]
fn ipv6_answer() {
    let text = "v=0\r\no=- 1 1 IN IP6 2001:db8::7\r\ns=-\r\nc=IN IP6 2001:db8::7\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 8\r\n";
    let local = capabilities_from_codec_list(&["pcma"], false, false);
    let mut p = params(&[7000]);
    p.addr = "2001:db8::1".parse().unwrap();
    let (ans, neg) = answer(&parse(text.as_bytes()).unwrap(), &local, &p).unwrap();
    assert!(lines(&ans).contains(&"o=- 3900000000 3900000000 IN IP6 2001:db8::1".to_owned()));
    assert!(lines(&ans).contains(&"c=IN IP6 2001:db8::1".to_owned()));
    assert_eq!(
        neg.audio().unwrap().remote_rtp,
        Some(addr("[2001:db8::7]:5004"))
    );
}

#[test]
fn uac_offer_then_answer_from_a_peer_that_renumbers() {
    let local = capabilities_from_codec_list(&["wideband", "pcmu", "dtmf", "flv"], false, false);
    let ours = offer(&local, &params(&[10000, 10002])).unwrap();
    // A sloppy answerer: speex under pt 110, telephone-event under 100, video rejected.
    let text = "v=0\r\no=- 77 77 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 110 100\r\na=rtpmap:110 SPEEX/16000\r\na=rtpmap:100 telephone-event/8000\r\na=ptime:40\r\n\
        m=video 0 RTP/AVP 97\r\n";
    let neg = apply_answer(&ours, &parse(text.as_bytes()).unwrap()).unwrap();
    let a = neg.audio().unwrap();
    assert_eq!(a.codec, Some(Format::new(110, "SPEEX", 16000)));
    assert_eq!(a.telephone_event, Some(100));
    assert_eq!(a.ptime, Some(40));
    assert_eq!(a.remote_rtp, Some(addr("198.51.100.9:6000")));
    assert_eq!(a.local_port, 10000);
    assert!(neg.video().is_none());
    assert!(!neg.media[1].accepted);
    assert!(!neg.has_kind(&MediaKind::Video));
    assert!(neg.has_kind(&MediaKind::Audio));
}

#[test]
fn uac_round_trip_with_our_own_answer() {
    let caller = capabilities_from_codec_list(&[], true, false);
    let callee = capabilities_from_codec_list(&["narrowband", "pcma", "dtmf", "flv"], false, false);
    let o = offer(&caller, &params(&[10000, 10002])).unwrap();
    let (a, uas) = answer(&o, &callee, &params(&[20000, 20002])).unwrap();
    let uac = apply_answer(&o, &a).unwrap();
    assert_eq!(block(&a, 0)[0], "m=audio 20000 RTP/AVP 98 8 101");
    assert_eq!(uac.audio().unwrap().codec, uas.audio().unwrap().codec);
    assert_eq!(
        uac.audio().unwrap().remote_rtp,
        Some(addr("192.0.2.1:20000"))
    );
    assert_eq!(
        uas.audio().unwrap().remote_rtp,
        Some(addr("192.0.2.1:10000"))
    );
    assert_eq!(uac.video().unwrap().codec.as_ref().unwrap().name, "x-flv");
}

#[test]
fn uac_answer_errors() {
    let local = capabilities_from_codec_list(&["pcmu", "flv"], false, false);
    let ours = offer(&local, &params(&[10000, 10002])).unwrap();
    let one = parse(b"v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(
        apply_answer(&ours, &one).unwrap_err(),
        SdpError::MediaCountMismatch {
            offer: 2,
            answer: 1
        }
    );
    let none = parse(b"v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 97\r\n").unwrap();
    assert_eq!(
        apply_answer(&ours, &none).unwrap_err(),
        SdpError::NoAcceptableMedia
    );
    assert_eq!(
        offer(&Capabilities::default(), &params(&[])).unwrap_err(),
        SdpError::InvalidArgument("no local streams to offer")
    );
}

#[test]
fn hold_and_resume_reoffers() {
    let local = capabilities_from_codec_list(&["pcmu", "dtmf", "flv"], false, false);
    let first = offer(&local, &params(&[10000, 10002])).unwrap();
    assert!(!is_hold(&first));

    let held = reoffer(&first, true);
    assert_eq!(held.version(), first.version() + 1, "RFC 3264 §8");
    assert_eq!(held.session_id(), first.session_id());
    assert!(is_hold(&held));
    assert_eq!(block(&held, 0).last().unwrap(), "a=sendonly");
    assert_eq!(block(&held, 1).last().unwrap(), "a=sendonly");
    assert!(
        lines(&held).contains(&"c=IN IP4 192.0.2.1".to_owned()),
        "real address kept"
    );

    let resumed = reoffer(&held, false);
    assert_eq!(resumed.version(), first.version() + 2);
    assert!(!is_hold(&resumed));
    assert_eq!(block(&resumed, 0).last().unwrap(), "a=sendrecv");
    assert_eq!(
        lines(&resumed)
            .iter()
            .filter(|l| l.starts_with("a=send"))
            .count(),
        2,
        "one direction per stream, replaced in place"
    );

    // A recvonly stream is held with inactive (RFC 3264 §8.4).
    let recvonly = reoffer_with_direction(&first, Direction::RecvOnly);
    let held = reoffer(&recvonly, true);
    assert_eq!(block(&held, 0).last().unwrap(), "a=inactive");
    assert!(is_hold(&held));
}

#[test]
fn reoffer_of_a_recorded_offer_moves_session_level_direction() {
    let text = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\na=sendonly\r\n\
        m=audio 5004 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n";
    let prev = parse(text.as_bytes()).unwrap();
    assert!(is_hold(&prev));
    let next = reoffer(&prev, false);
    assert_eq!(
        lines(&next),
        [
            "v=0",
            "o=- 5 6 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 5004 RTP/AVP 0",
            "a=sendrecv",
            "m=video 0 RTP/AVP 31",
        ]
    );
}

#[test]
fn hold_needs_every_active_stream_held() {
    let text = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 0\r\na=inactive\r\nm=video 5006 RTP/AVP 31\r\n";
    assert!(!is_hold(&parse(text.as_bytes()).unwrap()));
    let text = text.replace("m=video 5006", "m=video 0");
    assert!(is_hold(&parse(text.as_bytes()).unwrap()));
    let media_c0 = "v=0\r\no=- 5 5 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 5004 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n";
    assert!(is_hold(&parse(media_c0.as_bytes()).unwrap()));
}
