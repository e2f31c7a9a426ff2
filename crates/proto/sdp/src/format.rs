//! Codec descriptions and the rules for "same format" used by offer/answer.

use std::fmt;

/// One RTP media format: a payload type bound to an encoding (RFC 4566 §6 `a=rtpmap`,
/// RFC 3551 §6 for the static payload types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Format {
    /// RTP payload type, 0..=127.
    pub pt: u8,
    /// Encoding name; compared case-insensitively.
    pub name: String,
    /// Clock rate in Hz.
    pub rate: u32,
    /// Channel count (1 when the rtpmap has no encoding parameter).
    pub channels: u8,
    /// Format parameters (`a=fmtp` value without the payload type), verbatim.
    pub fmtp: Option<String>,
}

impl Format {
    /// A mono format without parameters.
    pub fn new(pt: u8, name: impl Into<String>, rate: u32) -> Format {
        Format {
            pt,
            name: name.into(),
            rate,
            channels: 1,
            fmtp: None,
        }
    }

    /// Sets the channel count.
    pub fn with_channels(mut self, channels: u8) -> Format {
        self.channels = channels;
        self
    }

    /// Sets the format parameters.
    pub fn with_fmtp(mut self, fmtp: impl Into<String>) -> Format {
        self.fmtp = Some(fmtp.into());
        self
    }

    /// The static format for `pt` from RFC 3551 Tables 4 and 5, if `pt` has one.
    pub fn from_static(pt: u8) -> Option<Format> {
        STATIC_FORMATS
            .iter()
            .find(|(p, ..)| *p == pt)
            .map(|&(pt, name, rate, channels)| Format::new(pt, name, rate).with_channels(channels))
    }

    /// `telephone-event` (RFC 4733).
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }

    /// A format that carries no media of its own and so cannot be "the" codec of a
    /// stream: telephone-event (RFC 4733), comfort noise (RFC 3389), redundancy
    /// (RFC 2198), FEC (RFC 5109, RFC 8627) and retransmission (RFC 4588).
    pub fn is_auxiliary(&self) -> bool {
        [
            "telephone-event",
            "cn",
            "red",
            "ulpfec",
            "flexfec-03",
            "rtx",
        ]
        .iter()
        .any(|n| self.name.eq_ignore_ascii_case(n))
    }

    /// The rtpmap value for this format with payload type `pt`: `<pt> <name>/<rate>[/<channels>]`.
    pub fn rtpmap_value(&self, pt: u8) -> String {
        if self.channels == 1 {
            format!("{pt} {}/{}", self.name, self.rate)
        } else {
            format!("{pt} {}/{}/{}", self.name, self.rate, self.channels)
        }
    }

    /// Whether `self` and `other` describe the same encoding, so that one side's payload
    /// type can stand for the other's.
    ///
    /// Same as the original gateway (seed-spec §2.6): equal static payload types, or equal
    /// name (case-insensitive), clock rate and channel count. In addition H.264 formats
    /// must agree on `packetization-mode` (RFC 6184 §8.2.2: different modes are different
    /// formats; a missing parameter means mode 0).
    pub fn matches(&self, other: &Format) -> bool {
        if self.pt == other.pt && self.pt < 96 && Format::from_static(self.pt).is_some() {
            return true;
        }
        if !self.name.eq_ignore_ascii_case(&other.name)
            || self.rate != other.rate
            || self.channels != other.channels
        {
            return false;
        }
        if self.name.eq_ignore_ascii_case("h264") {
            return h264_packetization_mode(self.fmtp.as_deref())
                == h264_packetization_mode(other.fmtp.as_deref());
        }
        true
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rtpmap_value(self.pt))
    }
}

/// `packetization-mode` of an H.264 fmtp; 0 when absent (RFC 6184 §8.1).
fn h264_packetization_mode(fmtp: Option<&str>) -> u8 {
    fmtp.into_iter()
        .flat_map(|f| f.split(';'))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("packetization-mode"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// RFC 3551 §6 Tables 4 and 5: payload type, encoding name, clock rate, channels.
const STATIC_FORMATS: &[(u8, &str, u32, u8)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (7, "LPC", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (12, "QCELP", 8000, 1),
    (13, "CN", 8000, 1),
    (14, "MPA", 90000, 1),
    (15, "G728", 8000, 1),
    (16, "DVI4", 11025, 1),
    (17, "DVI4", 22050, 1),
    (18, "G729", 8000, 1),
    (25, "CelB", 90000, 1),
    (26, "JPEG", 90000, 1),
    (28, "nv", 90000, 1),
    (31, "H261", 90000, 1),
    (32, "MPV", 90000, 1),
    (33, "MP2T", 90000, 1),
    (34, "H263", 90000, 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_payload_types() {
        let f = Format::from_static(9).unwrap();
        assert_eq!((f.name.as_str(), f.rate, f.channels), ("G722", 8000, 1));
        assert_eq!(Format::from_static(18).unwrap().name, "G729");
        assert_eq!(Format::from_static(13).unwrap().name, "CN");
        assert_eq!(Format::from_static(0).unwrap().to_string(), "0 PCMU/8000");
        assert!(Format::from_static(96).is_none());
        assert!(Format::from_static(2).is_none());
    }

    #[test]
    fn matching() {
        let pcmu = Format::new(0, "pcmu", 8000);
        assert!(pcmu.matches(&Format::new(0, "PCMU", 8000)));
        assert!(pcmu.matches(&Format::new(0, "", 0)), "equal static pt");
        let sp = Format::new(96, "speex", 16000);
        assert!(sp.matches(&Format::new(110, "SPEEX", 16000)));
        assert!(!sp.matches(&Format::new(96, "speex", 8000)));
        let opus = Format::new(111, "opus", 48000).with_channels(2);
        assert!(!opus.matches(&Format::new(111, "opus", 48000)));
        let h1 = Format::new(99, "h264", 90000)
            .with_fmtp("profile-level-id=420014;packetization-mode=1");
        assert!(h1.matches(
            &Format::new(102, "H264", 90000).with_fmtp(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"
            )
        ));
        assert!(!h1.matches(
            &Format::new(104, "H264", 90000).with_fmtp(
                "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"
            )
        ));
        assert!(!h1.matches(&Format::new(105, "H264", 90000)));
    }

    #[test]
    fn auxiliary() {
        assert!(Format::new(101, "telephone-event", 8000).is_auxiliary());
        assert!(Format::new(13, "CN", 8000).is_auxiliary());
        assert!(!Format::new(0, "PCMU", 8000).is_auxiliary());
    }
}
