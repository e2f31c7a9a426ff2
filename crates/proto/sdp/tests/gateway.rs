//! The original gateway's vocabulary: seed-spec §2.6 tables and §8 scenarios 8, 9, 15, 16.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns load fixtures

use switchboard_sdp::{
    Format, MediaKind, SdpError, SessionParams, accepted, accepted_args, answer,
    capabilities_from_codec_list, offer, parse,
};

fn params() -> SessionParams {
    SessionParams {
        addr: "192.0.2.1".parse().unwrap(),
        ports: vec![10000, 10002],
        session_id: 1_700_000_000,
        session_version: 1_700_000_000,
    }
}

fn load(name: &str) -> switchboard_sdp::Session {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read(path).unwrap()).unwrap()
}

fn offer_text(list: &[&str], transcoder: bool, narrowband: bool) -> String {
    offer(
        &capabilities_from_codec_list(list, transcoder, narrowband),
        &params(),
    )
    .unwrap()
    .to_string()
}

fn pts(list: &[&str], transcoder: bool) -> Vec<(String, Vec<u8>)> {
    capabilities_from_codec_list(list, transcoder, false)
        .media
        .iter()
        .map(|m| (m.kind.to_string(), m.formats.iter().map(|f| f.pt).collect()))
        .collect()
}

#[test]
fn scenario_8_default_offer() {
    assert_eq!(
        offer_text(&[], false, false),
        "v=0\r\n\
         o=- 1700000000 1700000000 IN IP4 192.0.2.1\r\n\
         s=-\r\n\
         c=IN IP4 192.0.2.1\r\n\
         t=0 0\r\n\
         m=audio 10000 RTP/AVP 96 101\r\n\
         a=rtpmap:96 speex/16000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         m=video 10002 RTP/AVP 97\r\n\
         a=rtpmap:97 x-flv/90000\r\n"
    );
    // rate=narrowband: 96 is speex/8000.
    let nb = offer_text(&[], false, true);
    assert!(nb.contains("m=audio 10000 RTP/AVP 96 101\r\na=rtpmap:96 speex/8000\r\n"));
    // With the transcoder, 98 0 8 come before 101; 98 is the other speex rate.
    let tc = offer_text(&[], true, false);
    assert!(tc.contains(
        "m=audio 10000 RTP/AVP 96 98 0 8 101\r\n\
         a=rtpmap:96 speex/16000\r\n\
         a=rtpmap:98 speex/8000\r\n\
         a=rtpmap:0 pcmu/8000\r\n\
         a=rtpmap:8 pcma/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    ));
    let tc_nb = offer_text(&[], true, true);
    assert!(tc_nb.contains("a=rtpmap:96 speex/8000\r\na=rtpmap:98 speex/16000\r\n"));
}

#[test]
fn scenario_9_codec_list_offer() {
    let list = [
        "wideband",
        "narrowband",
        "pcmu",
        "pcma",
        "dtmf",
        "h264",
        "flv",
    ];
    assert_eq!(
        offer_text(&list, false, false),
        "v=0\r\n\
         o=- 1700000000 1700000000 IN IP4 192.0.2.1\r\n\
         s=-\r\n\
         c=IN IP4 192.0.2.1\r\n\
         t=0 0\r\n\
         m=audio 10000 RTP/AVP 96 98 0 8 101\r\n\
         a=rtpmap:96 speex/16000\r\n\
         a=rtpmap:98 speex/8000\r\n\
         a=rtpmap:0 pcmu/8000\r\n\
         a=rtpmap:8 pcma/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         m=video 10002 RTP/AVP 99 97\r\n\
         a=rtpmap:99 h264/90000\r\n\
         a=fmtp:99 profile-level-id=420014;packetization-mode=1\r\n\
         a=rtpmap:97 x-flv/90000\r\n"
    );
}

#[test]
fn codec_list_table_guards() {
    let a = |v: &[u8]| ("audio".to_owned(), v.to_vec());
    let v = |v: &[u8]| ("video".to_owned(), v.to_vec());
    // wideband has no guard; narrowband, pcmu, pcma are once only.
    assert_eq!(pts(&["wideband", "wideband"], false), [a(&[96, 96])]);
    assert_eq!(pts(&["narrowband", "narrowband"], false), [a(&[98])]);
    assert_eq!(pts(&["pcmu", "pcmu", "pcma", "pcma"], false), [a(&[0, 8])]);
    // ulaw/alaw need the transcoder and share the guard with pcmu/pcma.
    assert!(pts(&["ulaw", "alaw"], false).is_empty());
    assert_eq!(pts(&["ulaw", "alaw"], true), [a(&[0, 8])]);
    assert_eq!(pts(&["pcmu", "ulaw", "alaw", "pcma"], true), [a(&[0, 8])]);
    // dtmf and flv have no guard; any h264… string adds 99.
    assert_eq!(pts(&["dtmf", "dtmf"], false), [a(&[101, 101])]);
    assert_eq!(
        pts(&["h264/baseline", "flv", "flv"], false),
        [v(&[99, 97, 97])]
    );
    // No audio codec: no audio line at all; nothing: nothing.
    assert_eq!(pts(&["flv"], false), [v(&[97])]);
    assert!(pts(&["nellymoser"], false).is_empty());
    assert_eq!(
        offer(
            &capabilities_from_codec_list(&["bogus"], false, false),
            &params()
        )
        .unwrap_err(),
        SdpError::InvalidArgument("no local streams to offer")
    );
    // A payload type listed twice is written once, with one fmtp.
    let text = offer_text(&["wideband", "wideband", "h264", "h264"], false, false);
    assert!(text.contains("m=audio 10000 RTP/AVP 96\r\na=rtpmap:96 speex/16000\r\nm=video"));
    assert_eq!(text.matches("a=fmtp:99").count(), 1);
    // The recommended Flash 11 list.
    let list = [
        "wideband",
        "narrowband",
        "pcmu",
        "pcma",
        "ulaw",
        "alaw",
        "dtmf",
        "h264",
        "flv",
    ];
    assert_eq!(pts(&list, true), [a(&[96, 98, 0, 8, 101]), v(&[99, 97])]);
}

#[test]
fn scenario_15_pcmu_only_offer_without_pcmu_or_transcoder_is_488() {
    let pcmu_only = parse(
        b"v=0\r\no=- 8 8 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n\
          m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    )
    .unwrap();
    for list in [
        &["wideband", "narrowband", "dtmf", "flv"][..],
        &["wideband", "ulaw"][..],
        &[][..],
    ] {
        let local = capabilities_from_codec_list(list, false, false);
        let err = answer(&pcmu_only, &local, &params()).unwrap_err();
        assert_eq!(err, SdpError::NoAcceptableMedia, "{list:?}");
        assert_eq!(err.sip_status(), 488);
    }
    // With pcmu listed, or ulaw plus the transcoder, it is accepted.
    for (list, transcoder) in [(&["pcmu"][..], false), (&["wideband", "ulaw"][..], true)] {
        let local = capabilities_from_codec_list(list, transcoder, false);
        assert!(answer(&pcmu_only, &local, &params()).is_ok(), "{list:?}");
    }
}

#[test]
fn scenario_16_flv_and_speex_keep_the_offers_payload_types() {
    let list = ["wideband", "dtmf", "flv"];
    let local = capabilities_from_codec_list(&list, false, false);

    // The original gateway's own default offer.
    let (ans, neg) = answer(&load("gateway_default_offer.sdp"), &local, &params()).unwrap();
    let text = ans.to_string();
    assert!(text.contains("m=audio 10000 RTP/AVP 96\r\na=rtpmap:96 speex/16000\r\n"));
    assert!(text.contains("m=video 10002 RTP/AVP 97\r\na=rtpmap:97 x-flv/90000\r\n"));
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("default".into()), Some("default".into())))
    );

    // Another peer numbering things its own way: the answer follows it.
    let renumbered = parse(
        b"v=0\r\no=- 9 9 IN IP4 198.51.100.6\r\ns=-\r\nc=IN IP4 198.51.100.6\r\nt=0 0\r\n\
          m=audio 4000 RTP/AVP 0 102 100\r\na=rtpmap:102 speex/16000\r\na=rtpmap:100 telephone-event/8000\r\n\
          m=video 4002 RTP/AVP 120\r\na=rtpmap:120 x-flv/90000\r\n",
    )
    .unwrap();
    let (ans, neg) = answer(&renumbered, &local, &params()).unwrap();
    let text = ans.to_string();
    assert!(text.contains(
        "m=audio 10000 RTP/AVP 102 100\r\na=rtpmap:102 speex/16000\r\na=rtpmap:100 telephone-event/8000\r\n"
    ));
    assert!(text.contains("m=video 10002 RTP/AVP 120\r\na=rtpmap:120 x-flv/90000\r\n"));
    assert_eq!(neg.audio().unwrap().telephone_event, Some(100));
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("default".into()), Some("default".into())))
    );

    // speex/16000 only → ('speex', null), no video line in the answer.
    let speex_only = parse(
        b"v=0\r\no=- 9 9 IN IP4 198.51.100.6\r\ns=-\r\nc=IN IP4 198.51.100.6\r\nt=0 0\r\n\
          m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 speex/16000\r\n",
    )
    .unwrap();
    let (ans, neg) = answer(&speex_only, &local, &params()).unwrap();
    assert_eq!(ans.media_count(), 1);
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("speex".into()), None))
    );
}

#[test]
fn accepted_arguments_follow_the_list_order() {
    let asterisk = load("asterisk_offer.sdp"); // PCMU PCMA GSM telephone-event
    let run = |list: &[&str], transcoder: bool| {
        let local = capabilities_from_codec_list(list, transcoder, false);
        let (_, neg) = answer(&asterisk, &local, &params()).unwrap();
        accepted(list, transcoder, false, &neg)
    };
    let a = run(&["pcma", "pcmu", "dtmf"], false);
    assert_eq!(a.args, Some((Some("pcma".into()), None)));
    assert_eq!(a.transcode_to, None);
    // ulaw with the transcoder: speex towards the client, PCMU (the remote's pt) towards SIP.
    let a = run(&["wideband", "ulaw", "dtmf"], true);
    assert_eq!(a.args, Some((Some("speex".into()), None)));
    assert_eq!(a.transcode_to, Some(Format::new(0, "PCMU", 8000)));
    // pcmu listed before ulaw wins without transcoding.
    let a = run(&["pcmu", "ulaw"], true);
    assert_eq!(a.args, Some((Some("pcmu".into()), None)));
    assert_eq!(a.transcode_to, None);
}

#[test]
fn accepted_for_linphone_and_h264() {
    let linphone = load("linphone_offer.sdp");
    let list = ["narrowband", "wideband", "h264"];
    let local = capabilities_from_codec_list(&list, false, false);
    let (_, neg) = answer(&linphone, &local, &params()).unwrap();
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("speex".into()), None))
    );

    let gw = load("gateway_codec_list_offer.sdp");
    let list = ["wideband", "h264"];
    let local = capabilities_from_codec_list(&list, false, false);
    let (ans, neg) = answer(&gw, &local, &params()).unwrap();
    assert!(ans.to_string().contains(
        "m=video 10002 RTP/AVP 99\r\na=rtpmap:99 h264/90000\r\na=fmtp:99 profile-level-id=420014;packetization-mode=1\r\n"
    ));
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("speex".into()), Some("h264".into())))
    );
    // "h264/baseline" adds the format but only the exact string "h264" names the codec.
    let list = ["wideband", "h264/baseline"];
    let local = capabilities_from_codec_list(&list, false, false);
    let (_, neg) = answer(&gw, &local, &params()).unwrap();
    assert_eq!(
        accepted_args(&list, false, &neg),
        Some((Some("speex".into()), None))
    );
}

#[test]
fn no_codec_list_means_no_arguments_and_maybe_transcoding() {
    // Without a list the callback has no arguments.
    let local = capabilities_from_codec_list(&[], true, false);
    let (_, neg) = answer(&load("asterisk_offer.sdp"), &local, &params()).unwrap();
    let a = accepted(&[], true, false, &neg);
    assert_eq!(a.args, None);
    // Remote lacks speex/16000: transcode to the first of ours it has (PCMU).
    assert_eq!(a.transcode_to, Some(Format::new(0, "PCMU", 8000)));
    assert_eq!(accepted_args(&[], true, &neg), None);

    // Remote has speex/16000: no transcoding.
    let (_, neg) = answer(&load("linphone_offer.sdp"), &local, &params()).unwrap();
    assert_eq!(accepted(&[], true, false, &neg).transcode_to, None);
    // Narrowband default: our first format is speex/8000, which linphone has (pt 97).
    let local = capabilities_from_codec_list(&[], true, true);
    let (_, neg) = answer(&load("linphone_offer.sdp"), &local, &params()).unwrap();
    assert_eq!(accepted(&[], true, true, &neg).transcode_to, None);
    assert!(neg.remote_has(&Format::new(96, "speex", 8000)));
    assert!(neg.has_kind(&MediaKind::Audio));
}

/// Switchboard's additions to the vocabulary: Opus and G.722 offers, and `accepted`
/// naming them when the far end chose them.
#[test]
fn opus_and_g722_extend_the_vocabulary() {
    use switchboard_sdp::apply_answer;
    let list = ["opus", "g722", "pcmu", "opus", "dtmf"];
    let caps = capabilities_from_codec_list(&list, true, false);
    let params = SessionParams {
        addr: "127.0.0.1".parse().unwrap(),
        ports: vec![40000],
        session_id: 1,
        session_version: 1,
    };
    let o = offer(&caps, &params).unwrap();
    let text = String::from_utf8(o.to_bytes()).unwrap();
    assert!(
        text.contains("m=audio 40000 RTP/AVP 111 9 0 101\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"), "{text}");
    assert!(
        text.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"),
        "{text}"
    );
    let answer = parse(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 107 101\r\na=rtpmap:107 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
    let neg = apply_answer(&o, &answer).unwrap();
    assert_eq!(
        accepted(&list, true, false, &neg).args,
        Some((Some("opus".into()), None))
    );
}
