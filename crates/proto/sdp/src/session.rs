//! The session description model: [`sdp_types::Session`] (lossless parse and print)
//! behind a small wrapper that validates what offer/answer relies on, plus borrowed
//! typed views of each m-line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::attr::{Direction, Fmtp, MediaKind, Rtcp, RtpMap, parse_pt};
use crate::{Format, SdpError};

/// Parses a session description; the entry point for untrusted bytes (and the fuzzer).
///
/// Same as [`Session::parse`].
pub fn parse(bytes: &[u8]) -> Result<Session, SdpError> {
    Session::parse(bytes)
}

/// A parsed SDP session description (RFC 4566).
///
/// Parsing keeps every line it understands, including unknown attributes and m-lines
/// of unknown media or transport (`m=image 0 udptl t38`), and printing writes them back
/// byte-for-byte, provided the input uses CRLF line ends and the RFC 4566 §5 line order
/// (which every SIP user agent we know of does). Input with bare LF line ends is
/// accepted and printed with CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub(crate) inner: sdp_types::Session,
}

impl Session {
    /// Parses and validates a session description.
    ///
    /// Beyond the syntax checks of `sdp-types` this requires the `o=` and `s=` lines
    /// (RFC 4566 §5), at least one format on every m-line, and, for RTP m-lines,
    /// payload types in 0..=127 and well-formed `a=rtpmap` values. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Session, SdpError> {
        check_required_lines(bytes)?;
        let inner =
            sdp_types::Session::parse(bytes).map_err(|e| SdpError::Malformed(e.to_string()))?;
        validate(&inner)?;
        Ok(Session { inner })
    }

    /// Wraps a session built with `sdp-types` directly. It is not validated.
    pub fn from_raw(inner: sdp_types::Session) -> Session {
        Session { inner }
    }

    /// The underlying `sdp-types` model, for anything the typed views do not cover.
    pub fn raw(&self) -> &sdp_types::Session {
        &self.inner
    }

    /// Mutable access to the underlying model.
    pub fn raw_mut(&mut self) -> &mut sdp_types::Session {
        &mut self.inner
    }

    /// Unwraps the underlying model.
    pub fn into_raw(self) -> sdp_types::Session {
        self.inner
    }

    /// The session description as bytes (CRLF line ends), ready for a SIP body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        // Writing into a Vec cannot fail.
        let _ = self.inner.write(&mut out);
        out
    }

    /// `<sess-id>` of the o= line.
    pub fn session_id(&self) -> &str {
        &self.inner.origin.sess_id
    }

    /// `<sess-version>` of the o= line (RFC 3264 §8: incremented by each new offer).
    pub fn version(&self) -> u64 {
        self.inner.origin.sess_version
    }

    /// The session-level `c=` address, without any `/ttl` suffix.
    pub fn connection_address(&self) -> Option<&str> {
        self.inner
            .connection
            .as_ref()
            .map(|c| strip_ttl(&c.connection_address))
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.inner.attributes)
    }

    /// Number of m-lines.
    pub fn media_count(&self) -> usize {
        self.inner.medias.len()
    }

    /// The m-line at `index`.
    pub fn media(&self, index: usize) -> Option<MediaDesc<'_>> {
        self.inner.medias.get(index).map(|media| MediaDesc {
            session: &self.inner,
            media,
            index,
        })
    }

    /// All m-lines in order.
    pub fn medias(&self) -> impl Iterator<Item = MediaDesc<'_>> + '_ {
        self.inner
            .medias
            .iter()
            .enumerate()
            .map(|(index, media)| MediaDesc {
                session: &self.inner,
                media,
                index,
            })
    }

    /// Whether the writer of this SDP has put the other party on hold: every stream
    /// that is not rejected (port ≠ 0) is [`MediaDesc::is_hold`], and there is at least one.
    ///
    /// Recognises `a=sendonly`/`a=inactive` at session or media level and the legacy
    /// RFC 2543 `c=0.0.0.0` at either level (RFC 3264 §8.4).
    pub fn is_hold(&self) -> bool {
        let mut active = self.medias().filter(|m| !m.is_rejected()).peekable();
        active.peek().is_some() && active.all(|m| m.is_hold())
    }

    /// A WebRTC session: some active audio m-line runs DTLS-SRTP (`UDP/TLS/RTP/SAVP[F]`,
    /// RFC 5764 §8), which plain RTP endpoints cannot answer.
    pub fn is_webrtc(&self) -> bool {
        self.medias().any(|m| {
            !m.is_rejected()
                && m.kind().same_as(&MediaKind::Audio)
                && matches!(
                    m.proto().to_ascii_uppercase().as_str(),
                    "UDP/TLS/RTP/SAVPF" | "UDP/TLS/RTP/SAVP"
                )
        })
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// A borrowed, typed view of one m-line and the session-level lines it inherits.
#[derive(Debug, Clone, Copy)]
pub struct MediaDesc<'a> {
    session: &'a sdp_types::Session,
    media: &'a sdp_types::Media,
    index: usize,
}

impl<'a> MediaDesc<'a> {
    /// Position of this m-line in the session (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The media type.
    pub fn kind(&self) -> MediaKind {
        MediaKind::parse(&self.media.media)
    }

    /// Transport port.
    pub fn port(&self) -> u16 {
        self.media.port
    }

    /// A port of zero rejects or disables the stream (RFC 3264 §6, §8.2).
    pub fn is_rejected(&self) -> bool {
        self.media.port == 0
    }

    /// Transport protocol, as written (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, …).
    pub fn proto(&self) -> &'a str {
        &self.media.proto
    }

    /// Whether the transport is an RTP profile, so that the formats are payload types.
    pub fn is_rtp(&self) -> bool {
        is_rtp_proto(&self.media.proto)
    }

    /// The format list of the m-line, as written.
    pub fn fmt(&self) -> &'a str {
        &self.media.fmt
    }

    /// Payload types of an RTP m-line, in order (empty for other transports).
    pub fn payload_types(&self) -> Vec<u8> {
        if !self.is_rtp() {
            return Vec::new();
        }
        self.media
            .fmt
            .split_ascii_whitespace()
            .filter_map(parse_pt)
            .collect()
    }

    /// The formats of an RTP m-line in m-line order. A payload type is resolved through
    /// its `a=rtpmap`, or else through the static table of RFC 3551; dynamic payload
    /// types without an rtpmap are left out.
    pub fn formats(&self) -> Vec<Format> {
        self.payload_types()
            .into_iter()
            .filter_map(|pt| {
                let mut format = match self.rtpmap(pt) {
                    Some(r) => {
                        Format::new(pt, r.name, r.rate).with_channels(r.channels.unwrap_or(1))
                    }
                    None => Format::from_static(pt)?,
                };
                format.fmtp = self.fmtp(pt).map(str::to_owned);
                Some(format)
            })
            .collect()
    }

    /// The `a=rtpmap` for `pt`, if present and well-formed.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.media_values("rtpmap")
            .filter_map(|v| v.parse::<RtpMap>().ok())
            .find(|r| r.pt == pt)
    }

    /// The raw value of the `a=rtpmap` for `pt` (`<pt> <name>/<rate>…`), as written.
    pub fn rtpmap_value(&self, pt: u8) -> Option<&'a str> {
        self.media_values("rtpmap")
            .find(|v| v.parse::<RtpMap>().is_ok_and(|r| r.pt == pt))
    }

    /// The parameters of the `a=fmtp` for `pt`, verbatim.
    pub fn fmtp(&self, pt: u8) -> Option<&'a str> {
        self.media_values("fmtp").find_map(|v| {
            let fmtp = v.parse::<Fmtp>().ok()?;
            if fmtp.pt != pt {
                return None;
            }
            let v = v.trim_start();
            Some(v.split_once(' ').map_or("", |(_, p)| p.trim()))
        })
    }

    /// `a=ptime` in milliseconds (RFC 4566 §6), media level first, then session level.
    pub fn ptime(&self) -> Option<u32> {
        self.number_attribute("ptime")
    }

    /// `a=maxptime` in milliseconds (RFC 4566 §6), media level first, then session level.
    pub fn maxptime(&self) -> Option<u32> {
        self.number_attribute("maxptime")
    }

    /// The direction attribute written at media level, if any.
    pub fn declared_direction(&self) -> Option<Direction> {
        direction_of(&self.media.attributes)
    }

    /// The direction in force for this stream: media level, else session level, else
    /// sendrecv (RFC 3264 §5.1). A legacy `c=0.0.0.0` is not folded in here; see
    /// [`MediaDesc::effective_direction`].
    pub fn direction(&self) -> Direction {
        self.declared_direction()
            .or_else(|| direction_of(&self.session.attributes))
            .unwrap_or_default()
    }

    /// [`MediaDesc::direction`] with a legacy hold address (`c=0.0.0.0`, RFC 3264 §8.4)
    /// taken to mean "do not send to me": the receive half is removed.
    pub fn effective_direction(&self) -> Direction {
        let d = self.direction();
        if self.is_legacy_hold() {
            Direction::from_parts(d.sends(), false)
        } else {
            d
        }
    }

    /// The writer of the SDP does not want to receive on this stream: `a=sendonly`,
    /// `a=inactive` or `c=0.0.0.0`.
    pub fn is_hold(&self) -> bool {
        !self.effective_direction().recvs()
    }

    /// The RFC 2543 way of holding: the connection address is `0.0.0.0` (or `::`).
    ///
    /// ICE offers (RFC 8839 §4.2.3) also write `c=IN IP4 0.0.0.0` while candidates are
    /// still being gathered, so an m-line (or session) with `a=ice-ufrag` is never taken
    /// for a hold.
    pub fn is_legacy_hold(&self) -> bool {
        let ice = self.attribute("ice-ufrag").is_some();
        !ice && self.connection_ip().is_some_and(|ip| ip.is_unspecified())
    }

    /// The connection address in force: the first media-level `c=`, else the session's.
    pub fn connection_address(&self) -> Option<&'a str> {
        self.media
            .connections
            .first()
            .or(self.session.connection.as_ref())
            .map(|c| strip_ttl(&c.connection_address))
    }

    /// [`MediaDesc::connection_address`] parsed as an IP address (None for host names).
    pub fn connection_ip(&self) -> Option<IpAddr> {
        self.connection_address()?.parse().ok()
    }

    /// Where to send RTP: connection address and port. None for a rejected stream, a
    /// host name, or an unspecified (hold) address.
    pub fn rtp_addr(&self) -> Option<SocketAddr> {
        let ip = self.connection_ip().filter(|ip| !ip.is_unspecified())?;
        (self.media.port != 0).then(|| SocketAddr::new(ip, self.media.port))
    }

    /// `a=rtcp` (RFC 3605), if present and well-formed.
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.media_values("rtcp").find_map(|v| v.parse().ok())
    }

    /// `a=rtcp-mux` (RFC 5761 §5.1.1) at media level.
    pub fn rtcp_mux(&self) -> bool {
        self.media
            .attributes
            .iter()
            .any(|a| a.attribute.eq_ignore_ascii_case("rtcp-mux"))
    }

    /// Where to send RTCP without multiplexing: the `a=rtcp` port and address if given
    /// (RFC 3605), else the RTP port + 1 on the connection address (RFC 3550 §11).
    pub fn rtcp_addr(&self) -> Option<SocketAddr> {
        let rtp = self.rtp_addr()?;
        match self.rtcp() {
            Some(rtcp) => {
                let ip = rtcp
                    .address
                    .and_then(|a| strip_ttl(&a).parse::<IpAddr>().ok())
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(rtp.ip());
                Some(SocketAddr::new(ip, rtcp.port))
            }
            None => Some(SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?)),
        }
    }

    /// `a=mid` (RFC 5888), if present.
    pub fn mid(&self) -> Option<&'a str> {
        self.media_values("mid").next()
    }

    /// The first attribute named `name` at media level, else at session level. The inner
    /// option is its value (`None` for a property attribute).
    pub fn attribute(&self, name: &str) -> Option<Option<&'a str>> {
        let find = |attrs: &'a [sdp_types::Attribute]| {
            attrs
                .iter()
                .find(|a| a.attribute.eq_ignore_ascii_case(name))
                .map(|a| a.value.as_deref())
        };
        find(&self.media.attributes).or_else(|| find(&self.session.attributes))
    }

    /// The underlying `sdp-types` m-line.
    pub fn raw(&self) -> &'a sdp_types::Media {
        self.media
    }

    fn media_values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.media
            .attributes
            .iter()
            .filter(move |a| a.attribute.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value.as_deref())
    }

    fn number_attribute(&self, name: &str) -> Option<u32> {
        self.attribute(name)
            .flatten()
            .and_then(|v| v.trim().parse::<u32>().ok())
    }
}

/// Whether a transport protocol is one of the RTP profiles (`RTP/AVP`, `RTP/SAVPF`,
/// `UDP/TLS/RTP/SAVPF`, `TCP/RTP/AVP`, …).
pub(crate) fn is_rtp_proto(proto: &str) -> bool {
    proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
}

/// The last direction attribute of a list (RFC 4566 allows one; be lenient).
pub(crate) fn direction_of(attrs: &[sdp_types::Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .rev()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attribute(&a.attribute))
}

fn strip_ttl(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

/// RFC 4566 §5: `o=` and `s=` are required. `sdp-types` tolerates their absence and
/// would print placeholders, which is neither valid nor lossless.
fn check_required_lines(bytes: &[u8]) -> Result<(), SdpError> {
    let (mut origin, mut name) = (false, false);
    for line in bytes.split(|b| *b == b'\n') {
        match line {
            [b'm', b'=', ..] => break,
            [b'o', b'=', ..] => origin = true,
            [b's', b'=', ..] => name = true,
            _ => {}
        }
    }
    match (origin, name) {
        (true, true) => Ok(()),
        (false, _) => Err(SdpError::Malformed("missing o= line".into())),
        (true, false) => Err(SdpError::Malformed("missing s= line".into())),
    }
}

fn validate(session: &sdp_types::Session) -> Result<(), SdpError> {
    for (i, media) in session.medias.iter().enumerate() {
        let m = i + 1;
        let mut formats = media.fmt.split_ascii_whitespace().peekable();
        if formats.peek().is_none() {
            return Err(SdpError::Malformed(format!("m-line {m} has no format")));
        }
        if !is_rtp_proto(&media.proto) {
            continue;
        }
        if let Some(bad) = formats.find(|f| parse_pt(f).is_none()) {
            return Err(SdpError::Malformed(format!(
                "m-line {m}: bad payload type {bad:?}"
            )));
        }
        for a in &media.attributes {
            if a.attribute.eq_ignore_ascii_case("rtpmap") {
                a.value.as_deref().unwrap_or("").parse::<RtpMap>()?;
            }
        }
    }
    Ok(())
}
