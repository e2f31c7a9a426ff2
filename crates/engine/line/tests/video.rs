//! Video calls: the seed's video m-line (seed-spec §2.6, §8 item 9) when the front gives
//! a video port, the x-flv tunnel and H.264 in the media parameters, and key-frame
//! requests by SIP INFO (RFC 5168, seed-spec §3.5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sip::{HeaderName, Message};
use switchboard_line::{Command, LineEvent, LineId, MediaCommand, MediaParams};

const VIDEO: &str = "192.0.2.1:40002";

fn invite(h: &mut H, line: LineId, codecs: &[&str], video: bool) -> Message {
    h.command(
        line,
        Command::Invite {
            dest: "bob@example.com".into(),
            codecs: codecs.iter().map(|s| s.to_string()).collect(),
            rtp: addr(RTP),
            video: video.then(|| addr(VIDEO)),
        },
    );
    h.expect("INVITE")
}

/// The callee's 200 with `sdp`.
fn ok(inv: &Message, sdp: &str) -> Message {
    reply(
        inv,
        200,
        Some("callee1"),
        &[("Contact", "<sip:bob@198.51.100.7:5062>")],
        Some(sdp),
    )
}

fn answer_with_video(
    audio: &str,
    audio_lines: &[&str],
    video: &str,
    video_lines: &[&str],
) -> String {
    let mut lines: Vec<String> = audio_lines.iter().map(|s| s.to_string()).collect();
    lines.push(format!("m=video 30002 RTP/AVP {video}"));
    lines.extend(video_lines.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    remote_sdp(1, "198.51.100.7", audio, &refs)
}

fn started(h: &mut H) -> MediaParams {
    match h.next_media() {
        MediaCommand::Start(p) => p,
        other => panic!("{other:?}"),
    }
}

/// Seed-spec §8 item 9, then an H.264 answer.
#[test]
fn seed_8_09_video_m_line_and_h264_agreed() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let list = [
        "wideband",
        "narrowband",
        "pcmu",
        "pcma",
        "dtmf",
        "h264",
        "flv",
    ];
    let inv = invite(&mut h, line, &list, true);
    let offer = body_text(&inv);
    assert!(
        offer.contains("m=audio 40000 RTP/AVP 96 98 0 8 101\r\n"),
        "{offer}"
    );
    assert!(offer.contains("m=video 40002 RTP/AVP 99 97\r\n"), "{offer}");
    assert!(
        offer.contains("a=fmtp:99 profile-level-id=420014;packetization-mode=1\r\n"),
        "{offer}"
    );
    assert!(offer.contains("a=rtpmap:97 x-flv/90000\r\n"), "{offer}");
    let answer = answer_with_video(
        "0 101",
        &["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"],
        "99",
        &[
            "a=rtpmap:99 H264/90000",
            "a=fmtp:99 profile-level-id=42e01f;packetization-mode=1",
        ],
    );
    h.recv(&ok(&inv, &answer));
    h.expect("ACK");
    let p = started(&mut h);
    let v = p.video.expect("video stream");
    assert_eq!(v.local, addr(VIDEO));
    assert_eq!(v.remote_rtp, addr("198.51.100.7:30002"));
    assert_eq!((v.codec.pt, v.codec.name.as_str()), (99, "H264"));
    assert!(!v.tunnel);
    assert_eq!(v.packetization_mode, 1);
    assert!(v.send && v.recv);
    assert_eq!(
        h.next_event(),
        (
            line,
            LineEvent::Accepted(Some((Some("pcmu".into()), Some("h264".into()))))
        )
    );
}

/// Seed-spec §2.6: `flv` listed and the remote has x-flv → the tunnel and
/// `accepted('default', 'default')`.
#[test]
fn x_flv_tunnel_is_agreed_between_gateways() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, &["wideband", "dtmf", "flv"], true);
    assert!(body_text(&inv).contains("m=video 40002 RTP/AVP 97\r\n"));
    let answer = answer_with_video(
        "96 101",
        &[
            "a=rtpmap:96 speex/16000",
            "a=rtpmap:101 telephone-event/8000",
        ],
        "97",
        &["a=rtpmap:97 x-flv/90000"],
    );
    h.recv(&ok(&inv, &answer));
    h.expect("ACK");
    let v = started(&mut h).video.unwrap();
    assert!(v.tunnel);
    assert_eq!(v.codec.name, "x-flv");
    assert_eq!(
        h.next_event().1,
        LineEvent::Accepted(Some((Some("default".into()), Some("default".into()))))
    );
}

/// Without a video port the line stays audio only, whatever the list says.
#[test]
fn no_video_port_no_video() {
    let mut h = H::new();
    let line = h.line("alice@example.com", None);
    let inv = invite(&mut h, line, &["pcmu", "h264", "flv"], false);
    assert!(!body_text(&inv).contains("m=video"));
    h.recv(&ok(&inv, &pcmu_sdp(1, &[])));
    h.expect("ACK");
    assert_eq!(started(&mut h).video, None);
    assert_eq!(
        h.next_event().1,
        LineEvent::Accepted(Some((Some("pcmu".into()), None)))
    );
    // No video: no key-frame request goes out.
    h.command(line, Command::RequestKeyFrame);
    h.assert_quiet();
}

/// An incoming H.264 offer (dynamic pt 126, mode 1) answered on our video port, then
/// key-frame requests both ways.
#[test]
fn inbound_h264_and_picture_fast_update() {
    let mut h = H::new();
    let (line, user) = h.registered_line("alice@example.com");
    let offer = answer_with_video(
        "0",
        &["a=rtpmap:0 PCMU/8000"],
        "126",
        &[
            "a=rtpmap:126 H264/90000",
            "a=fmtp:126 profile-level-id=42801f;packetization-mode=1",
        ],
    );
    let inv = incoming_invite(&format!("sip:{user}@192.0.2.1:5060"), "call1", &offer);
    h.recv(&inv);
    h.expect("100");
    h.expect("180");
    h.next_event();
    h.command(
        line,
        Command::Accept {
            codecs: vec!["pcmu".into(), "h264".into()],
            rtp: addr(RTP),
            video: Some(addr(VIDEO)),
        },
    );
    let ok = h.expect("200");
    let answer = body_text(&ok);
    assert!(answer.contains("m=video 40002 RTP/AVP 126\r\n"), "{answer}");
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
    let v = started(&mut h).video.unwrap();
    assert_eq!(
        (v.codec.pt, v.packetization_mode, v.tunnel),
        (126, 1, false)
    );
    assert_eq!(
        h.next_event().1,
        LineEvent::Accepted(Some((Some("pcmu".into()), Some("h264".into()))))
    );

    h.command(line, Command::RequestKeyFrame);
    let info = h.expect("INFO");
    assert_eq!(
        info.header(HeaderName::ContentType),
        Some("application/media_control+xml")
    );
    let body = body_text(&info);
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>"),
        "{body}"
    );
    assert!(
        body.contains("<to_encoder>\r\n      <picture_fast_update></picture_fast_update>"),
        "{body}"
    );
    h.recv(&reply(&info, 200, None, &[], None));

    // The remote asks us (seed-spec §7.12: the original answered 405).
    let fir = in_dialog(
        "INFO",
        "sip:a@x",
        "call1",
        &tag,
        2,
        "fir",
        &["Content-Type: application/media_control+xml"],
        "<media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>",
    );
    h.recv(&fir);
    h.expect("200");
    assert_eq!(h.next_event(), (line, LineEvent::KeyFrameRequested));
    h.assert_quiet();
}
