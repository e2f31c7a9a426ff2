//! Small pure helpers: address strings, destination parsing, reject reasons, DTMF
//! bodies, and the codec capabilities of a line.

use std::net::{IpAddr, SocketAddr};

use sdp::{Capabilities, Format, LocalMedia, MediaKind, Negotiated};
use sip::{NameAddr, Scheme, Uri};

use crate::api::{MediaParams, VideoParams};

/// Methods a line accepts (Allow header).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE";

/// Removes control characters (CR, LF, ...) from text that goes into a header.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// An address as the seed's callbacks print it (p2p-sip `Address.__repr__`):
/// `"Bob" <sip:bob@example.com>` with a display name, otherwise the bare URI (in angle
/// brackets only when it has parameters or headers). Header parameters (tag) are dropped.
pub(crate) fn display_addr(na: &NameAddr) -> String {
    let mut uri = na.uri.clone();
    uri.password = None;
    let bracket = !uri.params.is_empty() || uri.headers.is_some();
    match &na.display {
        Some(d) if !d.is_empty() => format!("\"{}\" <{uri}>", escape_quoted(d)),
        _ if bracket => format!("<{uri}>"),
        _ => uri.to_string(),
    }
}

fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parses the `invite` destination (seed-spec §1.3): a SIP address such as
/// `"Bob" <sip:bob@host>`; failing that, the text with `sip:` prepended (`bob@host` →
/// `sip:bob@host`). Unlike the original, a destination without a host part (`bob`,
/// `12125551234`, `tel:+12125551234`) is taken as a user at the AOR's domain, where the
/// original produced `sip:12125551234` and failed its DNS lookup.
pub(crate) fn parse_dest(dest: &str, aor: &Uri) -> Option<NameAddr> {
    let dest = sanitize(dest.trim());
    if dest.is_empty() {
        return None;
    }
    let mut na = NameAddr::parse(&dest)
        .ok()
        .filter(|na| matches!(na.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel))
        .or_else(|| NameAddr::parse(&format!("{}:{dest}", aor.scheme.as_str())).ok())?;
    if na.uri.scheme == Scheme::Tel {
        let number = na.uri.opaque.clone().unwrap_or_default();
        let number = number.split(';').next().unwrap_or_default().to_string();
        if number.is_empty() {
            return None;
        }
        let mut uri = Uri::sip(Some(&number), &aor.host, aor.port);
        uri.params.push(sip::Param::new("user", Some("phone")));
        na.uri = uri;
    } else if na.uri.user.is_none() && !looks_like_host(&na.uri.host) {
        let user = na.uri.host.clone();
        na.uri.user = Some(user);
        na.uri.host = aor.host.clone();
        na.uri.port = aor.port;
    }
    na.uri.headers = None;
    na.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    Some(na)
}

/// A host name has a dot (or is an IP literal or `localhost`); a bare word or a phone
/// number is a user.
fn looks_like_host(host: &str) -> bool {
    host.contains('.') || host.starts_with('[') || host.eq_ignore_ascii_case("localhost")
}

/// The status of `reject(reason)` (seed-spec §1.3): `"<3-digit code> <phrase>"`; if the
/// first token is not a code of a final failure, 603 with the whole text as phrase.
pub(crate) fn reject_status(reason: Option<&str>) -> (u16, Option<String>) {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return (603, None);
    };
    let (first, rest) = match reason.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim()),
        None => (reason, ""),
    };
    match first.parse::<u16>() {
        Ok(code) if (300..=699).contains(&code) && first.len() == 3 => {
            (code, (!rest.is_empty()).then(|| rest.to_string()))
        }
        _ => (603, Some(reason.to_string())),
    }
}

/// A DTMF digit we can send or report.
pub(crate) fn dtmf_digit(c: char) -> Option<char> {
    let c = c.to_ascii_uppercase();
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// The digit of an INFO body: `application/dtmf-relay` (`Signal=5`, also the numeric
/// 10/11 for `*`/`#`) or `application/dtmf` (just the digit).
pub(crate) fn parse_dtmf_info(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let value = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        "12" => Some('A'),
        "13" => Some('B'),
        "14" => Some('C'),
        "15" => Some('D'),
        v => {
            let mut chars = v.chars();
            let c = chars.next()?;
            if chars.next().is_some() {
                return None;
            }
            dtmf_digit(c)
        }
    }
}

/// The key-frame request body (RFC 5168 §3; seed-spec §3.5).
pub(crate) const PICTURE_FAST_UPDATE: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n",
    "<media_control>\r\n",
    "  <vc_primitive>\r\n",
    "    <to_encoder>\r\n",
    "      <picture_fast_update></picture_fast_update>\r\n",
    "    </to_encoder>\r\n",
    "  </vc_primitive>\r\n",
    "</media_control>\r\n",
);

/// An INFO asking for a key frame (RFC 5168: `application/media_control+xml` with a
/// `picture_fast_update` element, possibly self-closing).
pub(crate) fn is_picture_fast_update(content_type: &str, body: &[u8]) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    ct.eq_ignore_ascii_case("application/media_control+xml")
        && std::str::from_utf8(body).is_ok_and(|b| b.contains("<picture_fast_update"))
}

/// Is this codec string about audio (not `flv` or `h264…`)?
fn is_audio_codec(c: &str) -> bool {
    !(c == "flv" || c.starts_with("h264"))
}

/// The audio strings of a codec list.
pub(crate) fn audio_list(codecs: &[String]) -> Vec<&str> {
    codecs
        .iter()
        .map(String::as_str)
        .filter(|c| is_audio_codec(c))
        .collect()
}

/// What we offer for a codec list: the seed's streams (seed-spec §2.6). Without a video
/// port (`video` false) the video codecs are left out and the offer is audio only.
pub(crate) fn offer_caps(
    codecs: &[String],
    transcoder: bool,
    narrowband: bool,
    video: bool,
) -> Capabilities {
    let list: Vec<&str> = if video {
        codecs.iter().map(String::as_str).collect()
    } else {
        audio_list(codecs)
    };
    if audio_list(codecs).is_empty() && !codecs.is_empty() {
        // Only video codecs: the line needs an audio stream (an empty list would mean
        // the default offer instead).
        return Capabilities::default();
    }
    let mut caps = sdp::capabilities_from_codec_list(&list, transcoder, narrowband);
    if !video {
        caps.media.retain(|m| m.kind.same_as(&MediaKind::Audio));
    }
    caps
}

/// Every format the transcoder can turn into the client's audio.
fn transcodable() -> Vec<Format> {
    vec![
        Format::new(96, "speex", 16000),
        Format::new(98, "speex", 8000),
        Format::new(0, "pcmu", 8000),
        Format::new(8, "pcma", 8000),
        Format::new(9, "G722", 8000),
        Format::new(111, "opus", 48000).with_channels(2),
        Format::new(101, "telephone-event", 8000),
    ]
}

/// What we answer with for a codec list: the list's streams, plus, with the transcoder,
/// every audio format it can convert.
pub(crate) fn answer_caps(
    codecs: &[String],
    transcoder: bool,
    narrowband: bool,
    video: bool,
) -> Capabilities {
    let mut caps = offer_caps(codecs, transcoder, narrowband, video);
    if transcoder {
        if caps.first(&MediaKind::Audio).is_none() && !audio_list(codecs).is_empty() {
            caps.media
                .insert(0, LocalMedia::new(MediaKind::Audio, Vec::new()));
        }
        if let Some(audio) = caps
            .media
            .iter_mut()
            .find(|m| m.kind.same_as(&MediaKind::Audio))
        {
            for f in transcodable() {
                if !audio.formats.iter().any(|g| g.matches(&f)) {
                    audio.formats.push(f);
                }
            }
        }
    }
    caps
}

/// What a line could accept at all, checked when an INVITE arrives so that an
/// incompatible call is refused before the user is alerted (seed-spec §7.8): every
/// gateway audio codec, and with the transcoder everything it converts.
pub(crate) fn check_caps(transcoder: bool) -> Capabilities {
    let mut formats = vec![
        Format::new(96, "speex", 16000),
        Format::new(98, "speex", 8000),
        Format::new(0, "pcmu", 8000),
        Format::new(8, "pcma", 8000),
        Format::new(101, "telephone-event", 8000),
    ];
    if transcoder {
        formats = transcodable();
    }
    let mut audio = LocalMedia::new(MediaKind::Audio, formats);
    audio.protos.push("RTP/AVPF".to_owned());
    Capabilities { media: vec![audio] }
}

/// The client's own audio format for an `accepted` audio argument.
fn client_format(arg: Option<&str>, codecs: &[&str], narrowband: bool) -> Option<Format> {
    match arg {
        Some("pcmu") => Some(Format::new(0, "pcmu", 8000)),
        Some("pcma") => Some(Format::new(8, "pcma", 8000)),
        Some("speex") => {
            let wide = codecs
                .iter()
                .any(|c| *c == "wideband" || *c == "ulaw" || *c == "alaw");
            let narrow_only = !wide && codecs.contains(&"narrowband");
            Some(if narrow_only {
                Format::new(98, "speex", 8000)
            } else {
                Format::new(96, "speex", 16000)
            })
        }
        Some(_) => None,
        None if codecs.is_empty() => Some(if narrowband {
            Format::new(96, "speex", 8000)
        } else {
            Format::new(96, "speex", 16000)
        }),
        None => None,
    }
}

/// The first audio entry of a codec list as an `accepted` argument.
fn first_audio_arg(codecs: &[&str]) -> Option<String> {
    codecs.iter().find_map(|c| match *c {
        "wideband" | "narrowband" | "ulaw" | "alaw" => Some("speex".to_owned()),
        "pcmu" | "pcma" => Some((*c).to_owned()),
        _ => None,
    })
}

/// The `accepted` arguments and the media parameters after a negotiation.
pub(crate) type Plan = (Option<(Option<String>, Option<String>)>, MediaParams);

/// Works out `accepted(...)` (seed-spec §2.6, via [`sdp::accepted`]) and the RTP session.
/// Returns `None` when no audio stream was agreed.
pub(crate) fn media_plan(
    negotiated: &Negotiated,
    local: SocketAddr,
    video_local: Option<SocketAddr>,
    codecs: &[String],
    transcoder: bool,
    narrowband: bool,
) -> Option<Plan> {
    let audio = negotiated.audio()?;
    let codec = audio.codec.clone()?;
    let list: Vec<&str> = if video_local.is_some() {
        codecs.iter().map(String::as_str).collect()
    } else {
        audio_list(codecs)
    };
    let acc = sdp::accepted(&list, transcoder, narrowband, negotiated);
    let video = video_local
        .and_then(|v| video_params(negotiated, v))
        .map(Box::new);
    let tunnel = video.as_ref().is_some_and(|v| v.tunnel);
    let mut args = if codecs.is_empty() {
        None
    } else if tunnel {
        // seed-spec §2.6: x-flv carries whatever the client publishes.
        Some((Some("default".to_owned()), Some("default".to_owned())))
    } else {
        let acc_video = acc.args.as_ref().and_then(|(_, v)| v.clone());
        // Video only when a video stream really runs: never ask the client to publish
        // what goes nowhere.
        let v = acc_video.filter(|_| video.is_some());
        Some((acc.args.and_then(|(a, _)| a), v))
    };
    let mut transcode_to = acc.transcode_to;
    if transcoder && transcode_to.is_none() && !tunnel {
        if let Some((a, _)) = &mut args
            && a.is_none()
        {
            *a = first_audio_arg(&list);
        }
        let arg = args.as_ref().and_then(|(a, _)| a.as_deref());
        let client = client_format(arg, &list, narrowband);
        if client.is_some_and(|c| !c.matches(&codec)) {
            transcode_to = Some(codec.clone());
        }
    }
    let client_codec = transcode_to.as_ref().and_then(|_| {
        let arg = args.as_ref().and_then(|(a, _)| a.as_deref());
        client_format(arg, &list, narrowband)
    });
    let unspecified = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), audio.remote_port);
    let params = MediaParams {
        local,
        remote_rtp: audio.remote_rtp.unwrap_or(unspecified),
        remote_rtcp: audio.remote_rtcp,
        codec,
        telephone_event: audio.telephone_event,
        ptime: audio.ptime.unwrap_or(20),
        transcode_to,
        client_codec,
        send: audio.direction.sends() && audio.remote_rtp.is_some(),
        recv: audio.direction.recvs(),
        video,
    };
    Some((args, params))
}

/// The agreed video stream: the x-flv tunnel when both sides have it (seed-spec §2.6),
/// else H.264.
fn video_params(negotiated: &Negotiated, local: SocketAddr) -> Option<VideoParams> {
    let m = negotiated.video()?;
    let named = |name: &str| {
        m.formats
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name) && f.rate == 90000)
    };
    let (codec, tunnel) = match named("x-flv") {
        Some(f) => (f.clone(), true),
        None => (named("h264")?.clone(), false),
    };
    // RFC 6184 §8.1: packetization-mode defaults to 0.
    let packetization_mode = codec
        .fmtp
        .as_deref()
        .into_iter()
        .flat_map(|f| f.split(';'))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("packetization-mode"))
        .map_or(0, |(_, v)| u8::from(v.trim() == "1"));
    let unspecified = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), m.remote_port);
    Some(VideoParams {
        local,
        remote_rtp: m.remote_rtp.unwrap_or(unspecified),
        remote_rtcp: m.remote_rtcp,
        codec,
        tunnel,
        packetization_mode,
        send: m.direction.sends() && m.remote_rtp.is_some(),
        recv: m.direction.recvs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aor() -> Uri {
        Uri::parse("sip:alice@example.com").unwrap()
    }

    #[test]
    fn destinations() {
        let d = parse_dest("\"Bob\" <sip:bob@host.net>", &aor()).unwrap();
        assert_eq!(d.to_string(), "\"Bob\" <sip:bob@host.net>");
        assert_eq!(
            parse_dest("bob@example.org", &aor())
                .unwrap()
                .uri
                .to_string(),
            "sip:bob@example.org"
        );
        assert_eq!(
            parse_dest("12125551234", &aor()).unwrap().uri.to_string(),
            "sip:12125551234@example.com"
        );
        assert_eq!(
            parse_dest("tel:+12125551234", &aor())
                .unwrap()
                .uri
                .to_string(),
            "sip:+12125551234@example.com;user=phone"
        );
        assert_eq!(
            parse_dest("sip:example.org", &aor())
                .unwrap()
                .uri
                .to_string(),
            "sip:example.org"
        );
        assert!(parse_dest("", &aor()).is_none());
        assert!(parse_dest("<<<", &aor()).is_none());
    }

    #[test]
    fn reject_reasons() {
        assert_eq!(reject_status(None), (603, None));
        assert_eq!(
            reject_status(Some("486 Busy Here")),
            (486, Some("Busy Here".into()))
        );
        assert_eq!(
            reject_status(Some("Go away")),
            (603, Some("Go away".into()))
        );
        assert_eq!(reject_status(Some("486")), (486, None));
        assert_eq!(reject_status(Some("200 OK")), (603, Some("200 OK".into())));
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", b"Signal= 11\r\n"),
            Some('#')
        );
        assert_eq!(parse_dtmf_info("application/dtmf", b"*"), Some('*'));
        assert_eq!(parse_dtmf_info("text/plain", b"5"), None);
        assert_eq!(parse_dtmf_info("application/dtmf", b"55"), None);
    }

    #[test]
    fn addresses() {
        let na = NameAddr::parse("\"Bob\" <sip:bob@example.com>;tag=1").unwrap();
        assert_eq!(display_addr(&na), "\"Bob\" <sip:bob@example.com>");
        let na = NameAddr::parse("<sip:bob@example.com>;tag=1").unwrap();
        assert_eq!(display_addr(&na), "sip:bob@example.com");
        let na = NameAddr::parse("<sip:bob@example.com;user=phone>").unwrap();
        assert_eq!(display_addr(&na), "<sip:bob@example.com;user=phone>");
    }

    #[test]
    fn transcoder_widens_answers() {
        let list = vec!["wideband".to_string()];
        let plain = answer_caps(&list, false, false, false);
        assert_eq!(plain.media[0].formats.len(), 1);
        let wide = answer_caps(&list, true, false, false);
        assert!(wide.media[0].formats.iter().any(|f| f.name == "opus"));
        assert!(
            offer_caps(&["flv".to_string()], false, false, true)
                .media
                .is_empty()
        );
    }
}
