//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA), 16-bit linear PCM in and out.
//!
//! Encoding follows the G.711 decision levels on the 14-bit (µ-law) / 13-bit (A-law)
//! magnitude, with negative inputs taken in one's complement (`-x - 1`), as the ITU
//! reference and the classic Sun/spandsp implementations do. Decoding uses 256-entry tables
//! built at compile time. The free functions let a bridge transcode PCMU ↔ PCMA directly.

use super::plc::Plc;
use super::{Codec, CodecError, Decoder, Encoder};

/// Which G.711 companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (North America, Japan; PCMU).
    Mu,
    /// A-law (rest of the world; PCMA).
    A,
}

const ULAW_BIAS: u32 = 0x84;

/// Position of the segment for a magnitude: 0 for < 256, 1 for < 512 … (`None` when ≥ 2^15).
fn segment(magnitude: u32) -> u32 {
    // top_bit(magnitude | 0xFF) - 7, and magnitude | 0xFF is never 0.
    31 - (magnitude | 0xFF).leading_zeros() - 7
}

/// Encodes one sample as µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    let (magnitude, mask) = if x < 0 {
        ((-x - 1) as u32 + ULAW_BIAS, 0x7F)
    } else {
        (x as u32 + ULAW_BIAS, 0xFF)
    };
    let seg = segment(magnitude);
    if seg >= 8 {
        // Beyond the top decision level (|x| > 32635): the largest code.
        return 0x7F ^ mask;
    }
    (((seg << 4) | ((magnitude >> (seg + 3)) & 0x0F)) as u8) ^ mask
}

/// Encodes one sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    let (magnitude, mask) = if x < 0 {
        ((-x - 1) as u32, 0x55)
    } else {
        (x as u32, 0xD5)
    };
    // magnitude ≤ 32767, so the segment is at most 7.
    let seg = segment(magnitude);
    let shift = if seg == 0 { 4 } else { seg + 3 };
    (((seg << 4) | ((magnitude >> shift) & 0x0F)) as u8) ^ mask
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0F) as i32) << 3) + ULAW_BIAS as i32) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (ULAW_BIAS as i32 - t) as i16
    } else {
        (t - ULAW_BIAS as i32) as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut i = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    if seg != 0 {
        i = (i + 0x108) << (seg - 1);
    } else {
        i += 8;
    }
    if a & 0x80 != 0 { i as i16 } else { -i as i16 }
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Mu => ulaw_decode_const(i as u8),
            Law::A => alaw_decode_const(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = table(Law::Mu);
static ALAW_TABLE: [i16; 256] = table(Law::A);

/// Decodes one µ-law byte.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decodes one A-law byte.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

impl Law {
    fn codec(self) -> Codec {
        match self {
            Law::Mu => Codec::Pcmu,
            Law::A => Codec::Pcma,
        }
    }
}

/// G.711 encoder: one byte per sample, stateless.
#[derive(Debug)]
pub(super) struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    pub(super) fn new(law: Law) -> Self {
        G711Encoder { law }
    }
}

impl Encoder for G711Encoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // Any whole number of 20 ms frames makes a valid payload; the cap only keeps
        // the contract the same as the other codecs'.
        super::whole_frames(pcm.len(), 160, super::MAX_FRAMES_PER_PAYLOAD)?;
        match self.law {
            Law::Mu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Law::A => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
        Ok(())
    }
}

/// G.711 decoder; conceals with the shared pitch-repeating [`Plc`].
#[derive(Debug)]
pub(super) struct G711Decoder {
    law: Law,
    plc: Plc,
}

impl G711Decoder {
    pub(super) fn new(law: Law) -> Self {
        G711Decoder {
            law,
            plc: Plc::new(8000),
        }
    }
}

impl Decoder for G711Decoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        let table = match self.law {
            Law::Mu => &ULAW_TABLE,
            Law::A => &ALAW_TABLE,
        };
        out.extend(payload.iter().map(|&b| table[usize::from(b)]));
        self.plc.received(&mut out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc.conceal(samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_codes_for_zero() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        // One's complement for negatives: -1 is the negative zero code.
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_alaw(-1), 0x55);
    }

    #[test]
    fn ulaw_decode_table_reference_points() {
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x0F), -16764); // segment 7, mantissa 0
        assert_eq!(ulaw_to_linear(0x70), -120);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7D), -16);
        assert_eq!(ulaw_to_linear(0x6F), -132);
        assert_eq!(ulaw_to_linear(0xEF), 132);
    }

    #[test]
    fn alaw_decode_table_reference_points() {
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x54), -24);
        assert_eq!(alaw_to_linear(0xD4), 24);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x45), -264);
        assert_eq!(alaw_to_linear(0xC5), 264);
    }

    #[test]
    fn tables_are_odd_symmetric_and_monotonic() {
        for c in 0..128u8 {
            assert_eq!(ulaw_to_linear(c), -ulaw_to_linear(c | 0x80));
            assert_eq!(alaw_to_linear(c), -alaw_to_linear(c | 0x80));
        }
        // µ-law: codes 0x80..=0xFF go from +32124 down to 0.
        for c in 0x80..0xFFu8 {
            assert!(ulaw_to_linear(c) > ulaw_to_linear(c + 1));
        }
        // A-law positive codes sorted by value are monotonic in (code ^ 0x55) & 0x7F.
        let mut pos: Vec<i16> = (0..128u8)
            .map(|m| alaw_to_linear((m ^ 0x55) | 0x80))
            .collect();
        let sorted = {
            let mut s = pos.clone();
            s.sort();
            s
        };
        pos.dedup();
        assert_eq!(pos.len(), 128);
        assert_eq!(pos, sorted);
    }

    #[test]
    fn decode_then_encode_is_identity_except_negative_zero() {
        for c in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(c));
            // 0x7F (-0) decodes to 0, which encodes as 0xFF (+0).
            if c == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, c, "ulaw {c:#04x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#04x}");
        }
    }

    #[test]
    fn round_trip_error_bounds_over_all_i16() {
        for x in i16::MIN..=i16::MAX {
            let m = i32::from(x).abs();
            let eu = (i32::from(ulaw_to_linear(linear_to_ulaw(x))) - i32::from(x)).abs();
            // Half a step of the segment (step = 8 << seg on the biased magnitude), plus the
            // clipping above 32124.
            assert!(
                eu <= (m + 132) / 32 + 1 || m > 32124 && eu <= m - 32124,
                "ulaw {x}: {eu}"
            );
            let ea = (i32::from(alaw_to_linear(linear_to_alaw(x))) - i32::from(x)).abs();
            assert!(
                ea <= (m / 32).max(8) + 1 || m > 32256 && ea <= m - 32256,
                "alaw {x}: {ea}"
            );
        }
    }

    #[test]
    fn codec_round_trip_snr() {
        use crate::testsig::{snr_db, tone};
        let pcm = tone(1000.0, 8000, 10000.0, 1600);
        for law in [Law::Mu, Law::A] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let mut bytes = Vec::new();
            for f in pcm.chunks(160) {
                enc.encode(f, &mut bytes).unwrap();
            }
            assert_eq!(bytes.len(), 1600);
            let mut out = Vec::new();
            dec.decode(&bytes, &mut out).unwrap();
            let snr = snr_db(&pcm, &out);
            // G.711 gives about 38 dB on a loud tone.
            assert!(snr > 35.0, "{law:?}: {snr:.1} dB");
        }
    }
}
