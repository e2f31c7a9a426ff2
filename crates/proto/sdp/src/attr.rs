//! Typed views of the attributes offer/answer needs. The session model keeps every
//! attribute as text; these types parse a value on demand and print it back.

use std::fmt;
use std::str::FromStr;

use crate::SdpError;

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1, §6.1).
///
/// The direction is always seen from the side that wrote the SDP: `SendOnly` in an
/// offer means "the offerer will send and not receive".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default when no direction attribute is present.
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Builds a direction from its two halves.
    pub fn from_parts(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer of the SDP sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer of the SDP receives media.
    pub fn recvs(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other side: sendonly ↔ recvonly
    /// (RFC 3264 §6.1), sendrecv and inactive unchanged.
    pub fn reversed(self) -> Direction {
        Direction::from_parts(self.recvs(), self.sends())
    }

    /// Both halves must be allowed by both directions.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_parts(self.sends() && other.sends(), self.recvs() && other.recvs())
    }

    /// The attribute name (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Recognises a direction attribute name, case-insensitively.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The media type of an m-line (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// Anything else (`image`, `application`, `text`, `message`, …), kept as written.
    Other(String),
}

impl MediaKind {
    /// Parses the media field of an m-line; `audio` and `video` are matched case-insensitively.
    pub fn parse(s: &str) -> MediaKind {
        if s.eq_ignore_ascii_case("audio") {
            MediaKind::Audio
        } else if s.eq_ignore_ascii_case("video") {
            MediaKind::Video
        } else {
            MediaKind::Other(s.to_owned())
        }
    }

    /// The media field as written in an m-line.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Other(s) => s,
        }
    }

    /// Same media type (case-insensitive for `Other`).
    pub fn same_as(&self, other: &MediaKind) -> bool {
        self.as_str().eq_ignore_ascii_case(other.as_str())
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
/// (RFC 4566 §6). For audio the encoding parameter is the channel count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type, 0..=127.
    pub pt: u8,
    /// Encoding name as written (case is kept; compare case-insensitively).
    pub name: String,
    /// Clock rate in Hz.
    pub rate: u32,
    /// Channel count, when written.
    pub channels: Option<u8>,
}

impl FromStr for RtpMap {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<RtpMap, SdpError> {
        let bad = || SdpError::Malformed(format!("bad rtpmap {value:?}"));
        let (pt, encoding) = value.trim().split_once(' ').ok_or_else(bad)?;
        let pt = parse_pt(pt).ok_or_else(bad)?;
        let mut parts = encoding.trim().split('/');
        let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
        let rate = parts
            .next()
            .and_then(|r| r.trim().parse::<u32>().ok())
            .filter(|r| *r > 0)
            .ok_or_else(bad)?;
        let channels = match parts.next() {
            None => None,
            Some(c) => Some(
                c.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(bad)?,
            ),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(RtpMap {
            pt,
            name: name.to_owned(),
            rate,
            channels,
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.pt, self.name, self.rate)?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<format> <format specific parameters>` (RFC 4566 §6) for an RTP payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// RTP payload type the parameters belong to.
    pub pt: u8,
    /// The parameters, verbatim.
    pub params: String,
}

impl FromStr for Fmtp {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<Fmtp, SdpError> {
        let bad = || SdpError::Malformed(format!("bad fmtp {value:?}"));
        let value = value.trim_start();
        let (pt, params) = value.split_once(' ').unwrap_or((value, ""));
        Ok(Fmtp {
            pt: parse_pt(pt).ok_or_else(bad)?,
            params: params.trim().to_owned(),
        })
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pt, self.params)
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// Connection address, when given.
    pub address: Option<String>,
}

impl FromStr for Rtcp {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<Rtcp, SdpError> {
        let bad = || SdpError::Malformed(format!("bad rtcp attribute {value:?}"));
        let mut parts = value.split_ascii_whitespace();
        let port = parts
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(bad)?;
        let address = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(_nettype), Some(_addrtype), Some(addr)) => Some(addr.to_owned()),
            _ => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Rtcp { port, address })
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some(addr) = &self.address {
            let addrtype = if addr.contains(':') { "IP6" } else { "IP4" };
            write!(f, " IN {addrtype} {addr}")?;
        }
        Ok(())
    }
}

/// An RTP payload type: decimal, 0..=127 (RFC 3550 §5.1).
pub(crate) fn parse_pt(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_answer_rules() {
        // RFC 3264 §6.1
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(
            Direction::SendRecv.intersect(Direction::RecvOnly),
            Direction::RecvOnly
        );
        assert_eq!(
            Direction::from_attribute("SENDONLY"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute("rtcp-mux"), None);
    }

    #[test]
    fn rtpmap_parse_print() {
        let r: RtpMap = "111 opus/48000/2".parse().unwrap();
        assert_eq!(
            (r.pt, r.name.as_str(), r.rate, r.channels),
            (111, "opus", 48000, Some(2))
        );
        assert_eq!(r.to_string(), "111 opus/48000/2");
        let r: RtpMap = "96 speex/16000".parse().unwrap();
        assert_eq!(r.channels, None);
        for bad in [
            "",
            "96",
            "96 speex",
            "96 speex/",
            "96 speex/0",
            "128 x/8000",
            "1000 x/8000",
            "-1 x/8000",
            "96 x/99999999999",
            "96 x/8000/300",
            "96 x/8000/2/1",
            "96 /8000",
        ] {
            assert!(bad.parse::<RtpMap>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fmtp_and_rtcp() {
        let f: Fmtp = "101 0-16".parse().unwrap();
        assert_eq!((f.pt, f.params.as_str()), (101, "0-16"));
        assert!("x 0-16".parse::<Fmtp>().is_err());
        let r: Rtcp = "53020 IN IP4 126.16.64.4".parse().unwrap();
        assert_eq!(r.port, 53020);
        assert_eq!(r.address.as_deref(), Some("126.16.64.4"));
        assert_eq!(r.to_string(), "53020 IN IP4 126.16.64.4");
        assert_eq!("7079".parse::<Rtcp>().unwrap().address, None);
        assert!("70000".parse::<Rtcp>().is_err());
        assert!("9 IN IP4".parse::<Rtcp>().is_err());
    }
}
