//! The original gateway's codec-list vocabulary (seed-spec §2.6): the strings a Flash
//! client passes to `invite`/`accept`, the SDP streams they stand for, and the
//! arguments of the `accepted(audioCodec, videoCodec)` callback.

use crate::attr::MediaKind;
use crate::{Capabilities, Format, LocalMedia, Negotiated};

/// `a=fmtp` of the gateway's H.264 format (hard-coded in the original, seed-spec §7.12).
pub const H264_FMTP: &str = "profile-level-id=420014;packetization-mode=1";

fn wideband() -> Format {
    Format::new(96, "speex", 16000)
}
fn narrowband() -> Format {
    Format::new(98, "speex", 8000)
}
fn pcmu() -> Format {
    Format::new(0, "pcmu", 8000)
}
fn pcma() -> Format {
    Format::new(8, "pcma", 8000)
}
/// Opus as RFC 7587 writes it: always `opus/48000/2`.
fn opus() -> Format {
    Format::new(111, "opus", 48000)
        .with_channels(2)
        .with_fmtp("minptime=10;useinbandfec=1")
}

/// G.722: static payload type 9 with its historical 8000 Hz RTP clock (RFC 3551 §4.5.2).
fn g722() -> Format {
    Format::new(9, "G722", 8000)
}

fn dtmf() -> Format {
    Format::new(101, "telephone-event", 8000)
}
fn flv() -> Format {
    Format::new(97, "x-flv", 90000)
}
fn h264() -> Format {
    Format::new(99, "h264", 90000).with_fmtp(H264_FMTP)
}

fn gateway_media(kind: MediaKind, formats: Vec<Format>) -> LocalMedia {
    let mut media = LocalMedia::new(kind, formats);
    // AVPF (RFC 4585) peers are accepted too: feedback is optional for us to send.
    media.protos.push("RTP/AVPF".to_owned());
    media
}

/// The local streams of the original gateway for a codec list (seed-spec §2.6).
///
/// With an empty list (the client gave none): audio `96 speex/16000` (`speex/8000` if
/// `narrowband_default`, the connect-time `rate`), then with the transcoder `98` speex at
/// the other rate, `0 pcmu/8000`, `8 pcma/8000`; always `101 telephone-event/8000`; video
/// `97 x-flv/90000`.
///
/// Otherwise the codecs are appended in list order: `wideband` → 96 speex/16000 (every
/// time it is listed), `narrowband` → 98 speex/8000 (once), `pcmu` → 0 (once, shared with
/// `ulaw`), `pcma` → 8 (once, shared with `alaw`), `ulaw`/`alaw` → 0/8 only with the
/// transcoder, `dtmf` → 101 telephone-event/8000, `flv` → 97 x-flv/90000, any string
/// starting with `h264` → 99 h264/90000 with [`H264_FMTP`]. Switchboard adds `opus` → 111
/// opus/48000/2 and `g722` → 9 G722/8000 (once each) for HD phones and browsers; `accepted`
/// names them `"opus"` and `"g722"`. Other strings are ignored. A
/// stream with no format is left out, so the result may have no audio, no video, or
/// nothing at all (the caller's internal error).
///
/// Entries repeated by the list stay repeated here; [`crate::offer`] writes each payload
/// type once where the original wrote `96 96`.
pub fn capabilities_from_codec_list(
    list: &[&str],
    transcoder: bool,
    narrowband_default: bool,
) -> Capabilities {
    let mut audio = Vec::new();
    let mut video = Vec::new();
    if list.is_empty() {
        let (first, other) = if narrowband_default {
            (
                Format::new(96, "speex", 8000),
                Format::new(98, "speex", 16000),
            )
        } else {
            (
                Format::new(96, "speex", 16000),
                Format::new(98, "speex", 8000),
            )
        };
        audio.push(first);
        if transcoder {
            audio.extend([other, pcmu(), pcma()]);
        }
        audio.push(dtmf());
        video.push(flv());
    } else {
        let (mut has_narrowband, mut has_pcmu, mut has_pcma) = (false, false, false);
        let (mut has_opus, mut has_g722) = (false, false);
        for &codec in list {
            match codec {
                "wideband" => audio.push(wideband()),
                "narrowband" if !has_narrowband => {
                    audio.push(narrowband());
                    has_narrowband = true;
                }
                "pcmu" if !has_pcmu => {
                    audio.push(pcmu());
                    has_pcmu = true;
                }
                "pcma" if !has_pcma => {
                    audio.push(pcma());
                    has_pcma = true;
                }
                "ulaw" if transcoder && !has_pcmu => {
                    audio.push(pcmu());
                    has_pcmu = true;
                }
                "alaw" if transcoder && !has_pcma => {
                    audio.push(pcma());
                    has_pcma = true;
                }
                // Switchboard's additions for HD phones and browsers (not in the original).
                "opus" if !has_opus => {
                    audio.push(opus());
                    has_opus = true;
                }
                "g722" if !has_g722 => {
                    audio.push(g722());
                    has_g722 = true;
                }
                "dtmf" => audio.push(dtmf()),
                "flv" => video.push(flv()),
                c if c.starts_with("h264") => video.push(h264()),
                _ => {}
            }
        }
    }
    let mut media = Vec::new();
    if !audio.is_empty() {
        media.push(gateway_media(MediaKind::Audio, audio));
    }
    if !video.is_empty() {
        media.push(gateway_media(MediaKind::Video, video));
    }
    Capabilities { media }
}

/// What the gateway tells the Flash client after a call is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Arguments of `accepted(audioCodec, videoCodec)`: `None` when the client gave no
    /// codec list and the callback carries no arguments at all; a `None` codec is sent
    /// as `null` ("stop publishing that medium").
    pub args: Option<(Option<String>, Option<String>)>,
    /// When audio has to be transcoded from the client's speex, the remote's format
    /// (with the remote's payload type) to transcode to.
    pub transcode_to: Option<Format>,
}

/// The `accepted` callback and the transcoding choice after a negotiation (seed-spec
/// §2.6, "`accepted` arguments and transcoding choice").
///
/// - No codec list: no arguments. With the transcoder, an audio stream on both sides and
///   the remote lacking our first audio format, transcode to the first of our audio
///   formats that the remote has.
/// - `flv` listed and the remote has x-flv/90000: `("default", "default")`.
/// - Otherwise the first audio codec of the list that the remote supports decides:
///   `wideband`/`narrowband` → `"speex"`, `pcmu`/`pcma` → the same name, `ulaw`/`alaw`
///   (transcoder present) → `"speex"` with transcoding to the first of our audio formats
///   that the remote has. Video: `h264` listed and the remote has h264/90000 → `"h264"`.
///
/// Telephone-event is never chosen as a transcoding target (the original could).
pub fn accepted(
    list: &[&str],
    transcoder: bool,
    narrowband_default: bool,
    negotiated: &Negotiated,
) -> Accepted {
    let local = capabilities_from_codec_list(list, transcoder, narrowband_default);
    let target = || {
        local
            .first(&MediaKind::Audio)
            .into_iter()
            .flat_map(|m| &m.formats)
            .filter(|f| !f.is_auxiliary())
            .find(|f| negotiated.remote_has(f))
            .and_then(|f| remote_format(negotiated, f))
    };

    if list.is_empty() {
        let preferred = local
            .first(&MediaKind::Audio)
            .and_then(|m| m.formats.first());
        let transcode_to = match preferred {
            Some(p)
                if transcoder
                    && negotiated.has_kind(&MediaKind::Audio)
                    && !negotiated.remote_has(p) =>
            {
                target()
            }
            _ => None,
        };
        return Accepted {
            args: None,
            transcode_to,
        };
    }

    if list.contains(&"flv") && negotiated.remote_has(&flv()) {
        return Accepted {
            args: Some((Some("default".into()), Some("default".into()))),
            transcode_to: None,
        };
    }
    let (mut audio, mut video, mut transcode_to) = (None, None, None);
    for &codec in list {
        if audio.is_none() {
            let has = |f: Format| negotiated.remote_has(&f);
            match codec {
                "wideband" if has(wideband()) => audio = Some("speex".to_owned()),
                "narrowband" if has(narrowband()) => audio = Some("speex".to_owned()),
                "pcmu" if has(pcmu()) => audio = Some("pcmu".to_owned()),
                "pcma" if has(pcma()) => audio = Some("pcma".to_owned()),
                "opus" if has(opus()) => audio = Some("opus".to_owned()),
                "g722" if has(g722()) => audio = Some("g722".to_owned()),
                "ulaw" | "alaw" if transcoder => {
                    let g711 = if codec == "ulaw" { pcmu() } else { pcma() };
                    if has(g711) {
                        transcode_to = target();
                        audio = Some("speex".to_owned());
                    }
                }
                _ => {}
            }
        }
        if video.is_none() && codec == "h264" && negotiated.remote_has(&h264()) {
            video = Some("h264".to_owned());
        }
    }
    Accepted {
        args: Some((audio, video)),
        transcode_to,
    }
}

/// Just the arguments of the `accepted(audioCodec, videoCodec)` callback; see [`accepted`].
/// `None` means "call it with no arguments" (no codec list was given).
pub fn accepted_args(
    list: &[&str],
    transcoder: bool,
    negotiated: &Negotiated,
) -> Option<(Option<String>, Option<String>)> {
    accepted(list, transcoder, false, negotiated).args
}

/// The remote's format (its payload type) for one of ours, from the remote's m-lines.
fn remote_format(negotiated: &Negotiated, ours: &Format) -> Option<Format> {
    negotiated
        .media
        .iter()
        .filter(|m| m.remote_port != 0)
        .flat_map(|m| &m.remote_formats)
        .find(|r| {
            (ours.pt < 96 && r.pt == ours.pt)
                || (r.name.eq_ignore_ascii_case(&ours.name)
                    && r.rate == ours.rate
                    && r.channels == ours.channels)
        })
        .cloned()
}
