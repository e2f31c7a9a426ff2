//! The RTP fixed header (RFC 3550 §5.1): zero-copy parse and write.
//!
//! Hand-written rather than taken from `rtp-types`: the fixed header is 12 bytes, the
//! session only needs the fields below plus a borrowed payload, and `rtp-types` 0.1 would
//! bring `thiserror` 1 and `smallvec` into a tree that already has `thiserror` 2. RTCP,
//! where the formats are richer, uses `rtcp-types` (see [`super::rtcp`]).

use thiserror::Error;

/// Length of the fixed header, without CSRCs or extension.
pub const HEADER_LEN: usize = 12;

/// A parsed RTP packet borrowing the datagram.
///
/// CSRCs and the header extension are skipped and padding is stripped:
/// `payload` is exactly the payload-format data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Why a datagram is not a valid RTP packet (RFC 3550 A.1 header checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("shorter than the 12-byte RTP header")]
    TooShort,
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// The second byte is an RTCP packet type (RFC 5761 §4): payload types 64-95 with the
    /// marker set are not valid RTP, and SR/RR (72/73) fail RFC 3550 A.1.
    #[error("an RTCP packet type where the RTP payload type belongs")]
    Rtcp,
    #[error("CSRC list or header extension runs past the end of the packet")]
    Truncated,
    #[error("padding count is zero or larger than the payload")]
    Padding,
}

/// RFC 5761 §4 demultiplexing: with rtcp-mux, a datagram whose second byte is in
/// 192..=223 is RTCP.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

/// Parses one RTP packet (RFC 3550 §5.1, §5.3.1; validity checks of A.1).
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, ParseError> {
    if buf.len() < HEADER_LEN {
        return Err(ParseError::TooShort);
    }
    let b0 = buf[0];
    let version = b0 >> 6;
    if version != 2 {
        return Err(ParseError::Version(version));
    }
    // RFC 3550 A.1: "the payload type must be known, and in particular it must not be
    // equal to SR or RR"; RFC 5761 §4 widens that to the whole 192..=223 range.
    if is_rtcp(buf) {
        return Err(ParseError::Rtcp);
    }
    let csrc_count = usize::from(b0 & 0x0f);
    let mut offset = HEADER_LEN + 4 * csrc_count;
    if b0 & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile-defined id, 16-bit length in 32-bit words.
        let ext = buf.get(offset..offset + 4).ok_or(ParseError::Truncated)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        offset += 4 + 4 * words;
    }
    if offset > buf.len() {
        return Err(ParseError::Truncated);
    }
    let mut end = buf.len();
    if b0 & 0x20 != 0 {
        // RFC 3550 §5.1: the last octet counts the padding octets, itself included.
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || offset + pad > end {
            return Err(ParseError::Padding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7f,
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[offset..end],
    })
}

/// The caller's buffer cannot hold the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("buffer too small: {needed} bytes needed")]
pub struct BufferTooSmall {
    pub needed: usize,
}

/// Writes a 12-byte header (no CSRC, no extension, no padding) and `payload` into `buf`;
/// returns the packet length. `payload_type` is masked to 7 bits.
pub fn write(
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let len = HEADER_LEN + payload.len();
    let out = buf.get_mut(..len).ok_or(BufferTooSmall { needed: len })?;
    out[0] = 2 << 6;
    out[1] = (u8::from(marker) << 7) | (payload_type & 0x7f);
    out[2..4].copy_from_slice(&sequence.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    out[HEADER_LEN..].copy_from_slice(payload);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_round_trip() {
        let mut buf = [0u8; 64];
        let n = write(true, 0, 0xfffe, 0xdead_beef, 0x0102_0304, b"abc", &mut buf).unwrap();
        assert_eq!(n, 15);
        assert_eq!(
            &buf[..12],
            &[0x80, 0x80, 0xff, 0xfe, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]
        );
        let p = parse(&buf[..n]).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.sequence, 0xfffe);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x0102_0304);
        assert_eq!(p.payload, b"abc");
    }

    #[test]
    fn write_into_short_buffer_fails() {
        let mut buf = [0u8; 13];
        assert_eq!(
            write(false, 8, 1, 2, 3, b"ab", &mut buf),
            Err(BufferTooSmall { needed: 14 })
        );
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        // V=2 P=1 X=1 CC=2, PT=8.
        let mut pkt = vec![0xb2, 0x08, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // two CSRCs
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one-word extension
        pkt.extend_from_slice(b"pay");
        pkt.extend_from_slice(&[0, 0, 3]); // three octets of padding
        let p = parse(&pkt).unwrap();
        assert_eq!(p.payload, b"pay");
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.ssrc, 9);
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        assert_eq!(parse(&[]), Err(ParseError::TooShort));
        assert_eq!(parse(&[0x80; 11]), Err(ParseError::TooShort));
        assert_eq!(parse(&[0x40; 12]), Err(ParseError::Version(1)));
        // An RTCP RR (PT 201) is not RTP.
        assert_eq!(
            parse(&[0x80, 201, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ParseError::Rtcp)
        );
        // CC=15 but nothing follows.
        assert_eq!(
            parse(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ParseError::Truncated)
        );
        // X=1 with the extension header missing, then with its length running off the end.
        let mut ext = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&ext), Err(ParseError::Truncated));
        ext.extend_from_slice(&[0, 0, 0xff, 0xff]);
        assert_eq!(parse(&ext), Err(ParseError::Truncated));
        // P=1 with a zero count, then with a count larger than the packet.
        let mut pad = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&pad), Err(ParseError::Padding));
        *pad.last_mut().unwrap() = 2;
        assert_eq!(parse(&pad), Err(ParseError::Padding));
    }

    #[test]
    fn every_short_prefix_and_bit_pattern_is_handled() {
        // A cheap exhaustive-ish sweep: no input may panic.
        let base = [
            0xbf, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0x00, 0x04,
        ];
        for len in 0..base.len() {
            for b0 in 0..=255u8 {
                let mut v = base[..len].to_vec();
                if let Some(first) = v.first_mut() {
                    *first = b0;
                }
                let _ = parse(&v);
            }
        }
    }

    #[test]
    fn rtcp_demux_rule() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 223]));
        assert!(!is_rtcp(&[0x80, 0x80 | 31]));
        assert!(!is_rtcp(&[0x80, 101]));
        assert!(!is_rtcp(&[0x80]));
    }
}
